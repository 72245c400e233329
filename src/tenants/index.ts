/**
 * Tenants: the multi-tenant configuration. Decorated as `tenants` by the core
 * plugin; read by auth, the web pages (embed origins), webhooks and recording
 * (allowed locations, retention policy).
 */
export { TenantRegistry } from './TenantRegistry.js';
