/** A one-line progress bar on stderr (redrawn in place on a terminal, one line per update otherwise). */
export class Progress {
  #done = 0;
  #lastLine = '';

  constructor(
    readonly total: number,
    readonly enabled = true,
  ) {}

  tick(label: string, units = 1): void {
    this.#done = Math.min(this.total, this.#done + units);
    this.show(label);
  }

  show(label: string): void {
    if (!this.enabled) return;
    const width = 24;
    const filled = Math.round((this.#done / Math.max(1, this.total)) * width);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.#done}/${this.total} ${label}`;
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${line}`);
    else if (line !== this.#lastLine) process.stderr.write(`${line}\n`);
    this.#lastLine = line;
  }

  finish(): void {
    if (this.enabled && process.stderr.isTTY) process.stderr.write('\n');
  }
}
