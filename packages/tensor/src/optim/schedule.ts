export interface ScheduleOptions {
  /** Peak learning rate reached at the end of warm-up. */
  lr: number;
  warmupSteps?: number;
  totalSteps: number;
  /** Final learning rate (default 0). */
  minLr?: number;
}

/** Linear warm-up from 0, then linear decay to `minLr` at `totalSteps`. `step` counts from 0. */
export function linearSchedule({ lr, warmupSteps = 0, totalSteps, minLr = 0 }: ScheduleOptions): (step: number) => number {
  return (step) => {
    if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
    const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
    return lr + (minLr - lr) * progress;
  };
}

/** Linear warm-up, then half-cosine decay to `minLr`. */
export function cosineSchedule({ lr, warmupSteps = 0, totalSteps, minLr = 0 }: ScheduleOptions): (step: number) => number {
  return (step) => {
    if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
    const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
}

export function constantSchedule({ lr, warmupSteps = 0 }: Pick<ScheduleOptions, 'lr' | 'warmupSteps'>): (step: number) => number {
  return (step) => (step < warmupSteps ? (lr * (step + 1)) / warmupSteps : lr);
}
