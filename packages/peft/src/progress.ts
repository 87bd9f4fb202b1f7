export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressInfo {
  step: number;
  total: number;
  loss: number;
  tokensPerSecond: number;
  lossScale?: number;
  skipped?: number;
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/**
 * One status line on stderr: `[████░░░░] 12/100 loss 3.214 | 5,120 tok/s | eta 0:42`. On a terminal the line is
 * redrawn in place; otherwise about twenty lines are printed over the run.
 */
export class ProgressBar {
  readonly #stream: ProgressStream;
  readonly #start = performance.now();
  #lastPrinted = -1;

  constructor(stream: ProgressStream = process.stderr, readonly width = 24) {
    this.#stream = stream;
  }

  static format(info: ProgressInfo, elapsedSeconds: number, width = 24): string {
    const frac = info.total > 0 ? Math.min(1, info.step / info.total) : 0;
    const filled = Math.round(frac * width);
    const eta = frac > 0 ? (elapsedSeconds / frac) * (1 - frac) : NaN;
    const extra = info.lossScale !== undefined ? ` | scale ${info.lossScale} skipped ${info.skipped ?? 0}` : '';
    return (
      `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${info.step}/${info.total} loss ${info.loss.toFixed(4)} | ` +
      `${Math.round(info.tokensPerSecond).toLocaleString('en-US')} tok/s | eta ${clock(eta)}${extra}`
    );
  }

  update(info: ProgressInfo, elapsedSeconds = (performance.now() - this.#start) / 1000): void {
    const line = ProgressBar.format(info, elapsedSeconds, this.width);
    if (this.#stream.isTTY) {
      this.#stream.write(`\r${line}\x1b[K`);
      return;
    }
    const every = Math.max(1, Math.ceil(info.total / 20));
    if (info.step === info.total || info.step - this.#lastPrinted >= every) {
      this.#stream.write(`${line}\n`);
      this.#lastPrinted = info.step;
    }
  }

  message(text: string): void {
    this.#stream.write(this.#stream.isTTY ? `\r\x1b[K${text}\n` : `${text}\n`);
  }

  done(): void {
    if (this.#stream.isTTY) this.#stream.write('\n');
  }
}
