/**
 * Auth: who may do what.
 *
 * - TokenService verifies participant access tokens (JWT, jose) and mints join
 *   tokens for business apps.
 * - ApiKeyStore authenticates server-side callers by per-tenant API keys, which
 *   are stored as hashes only.
 * - turnCredentials derives short-lived coturn credentials.
 */
export * from './grants.js';
export * from './TokenService.js';
export * from './ApiKeyStore.js';
export * from './turnCredentials.js';
