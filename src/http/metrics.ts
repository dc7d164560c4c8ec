/** Prometheus metrics of one server (its own registry, so that several servers in a process do not mix). */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The metrics a server keeps. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly duration: Histogram<'method' | 'route'>;
  readonly recomputations: Counter<'outcome'>;
  readonly recomputedExecutions: Counter;
  readonly cacheHits: Counter;
  readonly jobs: Counter<'kind' | 'outcome'>;

  constructor() {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'provenant_http_requests_total', help: 'HTTP requests answered, by method, route and status', labelNames: ['method', 'route', 'status'], registers });
    this.duration = new Histogram({
      name: 'provenant_http_request_duration_seconds',
      help: 'Time to answer HTTP requests, by method and route',
      labelNames: ['method', 'route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.recomputations = new Counter({ name: 'provenant_recomputations_total', help: 'As-of reads and on-read transforms that ran executions, by outcome', labelNames: ['outcome'], registers });
    this.recomputedExecutions = new Counter({ name: 'provenant_recomputed_executions_total', help: 'Executions run to answer as-of reads and on-read transforms', registers });
    this.cacheHits = new Counter({ name: 'provenant_recompute_cache_hits_total', help: 'Executions a recomputation found in its memo cache instead of running', registers });
    this.jobs = new Counter({ name: 'provenant_replay_jobs_total', help: 'Replay and what-if jobs ended, by kind and outcome', labelNames: ['kind', 'outcome'], registers });
    collectDefaultMetrics({ register: this.registry, prefix: 'provenant_' });
  }
}
