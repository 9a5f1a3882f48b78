// The optional log file (Butler.fileLogging): JSON lines appended to <logDirectory>/butler-mqtt.log,
// rotated by size — the full file becomes butler-mqtt.log.1, .1 becomes .2 and so on, the oldest
// beyond `count` is deleted. Writes are synchronous so the last lines before an exit are never lost.
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

export interface RotatingFileOptions {
  /** Directory; created when missing. */
  dir: string;
  /** File name of the current file. */
  name: string;
  /** A file is rotated before a write would take it past this size. */
  maxBytes: number;
  /** Rotated files kept besides the current one (0 = the current file is truncated when full). */
  count: number;
}

export class RotatingFile {
  private fd: number | null = null;
  private size = 0;
  readonly file: string;

  constructor(private readonly options: RotatingFileOptions) {
    this.file = path.join(options.dir, options.name);
    mkdirSync(options.dir, { recursive: true });
    this.open();
  }

  write(line: string): void {
    if (this.fd === null) return;
    const data = Buffer.from(line, 'utf8');
    // A single line larger than the limit still goes into a file of its own rather than being lost.
    if (this.size > 0 && this.size + data.length > this.options.maxBytes) {
      try {
        this.rotate();
      } catch {
        // e.g. another program holds a rotated file open (Windows): keep appending, try again next line.
        if (this.fd === null) this.open();
      }
    }
    if (this.fd === null) return;
    writeSync(this.fd, data);
    this.size += data.length;
  }

  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }

  private open(): void {
    this.fd = openSync(this.file, 'a');
    this.size = fstatSync(this.fd).size;
  }

  private rotate(): void {
    this.close();
    const { count } = this.options;
    const numbered = (n: number) => `${this.file}.${n}`;
    rmSync(numbered(count), { force: true });
    for (let n = count - 1; n >= 1; n--) renameIfExists(numbered(n), numbered(n + 1));
    if (count > 0) renameIfExists(this.file, numbered(1));
    else rmSync(this.file, { force: true });
    this.open();
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
