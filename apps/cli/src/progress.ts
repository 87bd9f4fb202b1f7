/** A progress line on stderr, redrawn in place on a terminal. */
export function progressLine(label: string, done: number, total: number): void {
  const width = 24;
  const filled = Math.round((done / Math.max(1, total)) * width);
  const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${label}`;
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${line}${done >= total ? '\n' : ''}`);
  else if (done >= total) process.stderr.write(`${line}\n`);
}
