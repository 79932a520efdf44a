/** Prometheus metrics, one registry per app instance (tests build many apps in one process). */
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpRequests: new Counter({ name: 'http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] }),
    webhookLatency: new Histogram({
      name: 'wechat_webhook_duration_seconds', help: 'Webhook handling time (verify, decode, handle, encode)', labelNames: ['mode'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry],
    }),
    webhookInbound: new Counter({ name: 'wechat_webhook_inbound_total', help: 'Inbound messages and events by kind and outcome', labelNames: ['kind', 'outcome'], registers: [registry] }),
    wechatApiErrors: new Counter({ name: 'wechat_api_errors_total', help: 'WeChat API answers with a non-zero errcode', labelNames: ['path', 'errcode'], registers: [registry] }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
