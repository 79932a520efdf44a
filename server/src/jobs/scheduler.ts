/**
 * node-cron ticks that claim due work from the database. Any number of instances may run them: the
 * work itself is claimed with conditional updates / SKIP LOCKED, so ticking twice does no harm.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { FastifyBaseLogger } from 'fastify';

export interface Job {
  name: string;
  /** node-cron expression (seconds field allowed). */
  schedule: string;
  run(): Promise<void>;
}

export function startJobs(jobs: Job[], log: FastifyBaseLogger) {
  const running = new Set<Promise<void>>();
  const tasks: ScheduledTask[] = jobs.map((job) => {
    let busy = false;
    return cron.schedule(job.schedule, () => {
      if (busy) return; // never overlap a slow run with the next tick
      busy = true;
      const p = job.run().catch((err) => log.error({ err, job: job.name }, 'job failed')).finally(() => {
        busy = false;
        running.delete(p);
      });
      running.add(p);
    }, { name: job.name, noOverlap: true });
  });
  return {
    /** Stop ticking and wait for runs in flight. */
    async stop() {
      for (const t of tasks) await t.stop();
      await Promise.allSettled([...running]);
    },
  };
}
