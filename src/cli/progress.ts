/**
 * A progress line on standard error for work that takes longer than a second: updated in place on
 * a terminal, printed every 5 s otherwise (logs stay readable). Silent when `quiet`.
 */
export class Progress {
  readonly #label: string;
  readonly #quiet: boolean;
  readonly #unit: string;
  readonly #started = Date.now();
  readonly #tty = process.stderr.isTTY === true;
  #lastPrint = 0;
  #printed = false;

  /** @param unit what is counted (default `records`) */
  constructor(label: string, quiet = false, unit = 'records') {
    this.#label = label;
    this.#quiet = quiet;
    this.#unit = unit;
  }

  /** Report the current count (and an optional detail; with a total, a bar). Cheap to call often. */
  update(done: number, detail = '', total?: number): void {
    if (this.#quiet) return;
    const now = Date.now();
    const elapsed = now - this.#started;
    if (elapsed < 1000 || now - this.#lastPrint < (this.#tty ? 200 : 5000)) return;
    this.#lastPrint = now;
    const rate = Math.round(done / (elapsed / 1000));
    const bar = total === undefined || total <= 0 ? '' : `${progressBar(done / total)} `;
    const text = `${this.#label}: ${bar}${done.toLocaleString('en-US')}${total === undefined ? '' : ` of ${total.toLocaleString('en-US')}`} ${this.#unit}, ${rate.toLocaleString('en-US')}/s${detail ? `, ${detail}` : ''} (${(elapsed / 1000).toFixed(1)} s)`;
    if (this.#tty) process.stderr.write(`\r\u001b[2K${text}`);
    else process.stderr.write(`${text}\n`);
    this.#printed = true;
  }

  /** End the line (on a terminal). */
  done(): void {
    if (this.#printed && this.#tty) process.stderr.write('\n');
  }
}

/** `[#########-----------]  45%` */
function progressBar(fraction: number): string {
  const f = Math.min(1, Math.max(0, fraction));
  const width = 20;
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${String(Math.floor(f * 100)).padStart(3)}%`;
}
