// The API's OpenAPI document in Swagger UI, served from this server (fastapi-offline's copy), not a CDN.
/* global SwaggerUIBundle */
const root = document.getElementById('swagger-ui');
window.ui = SwaggerUIBundle({ url: root.dataset.openapi, dom_id: '#swagger-ui', deepLinking: true });
