import { Router } from 'express';

/** GET /openapi.json (placeholder, filled in below). */
export function openApiRoutes(): Router {
  const router = Router();
  router.get('/openapi.json', (_req, res) => {
    res.json({ openapi: '3.1.0' });
  });
  return router;
}
