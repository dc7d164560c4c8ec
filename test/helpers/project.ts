/** Small step projects written to real folders. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Write `files` (relative path → content) into `dir`, with a package.json that makes `dir` the project root. */
export function writeProject(dir: string, files: Readonly<Record<string, string>>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'tmp-proj', type: 'module', private: true }));
  writeFiles(dir, files);
}

/** Write (or overwrite) files under `dir`. */
export function writeFiles(dir: string, files: Readonly<Record<string, string>>): void {
  for (const [rel, text] of Object.entries(files)) {
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
}

/** Two small steps over flight records (`steps/parse.ts`, `steps/classify.ts` with `lateAfter`), for tests that need a real two-step pipeline. */
export const FLIGHT_STEPS: Readonly<Record<string, string>> = {
  'steps/parse.ts': `export default function parse(r: { origin: string; destination: string; delay: number }) {
    return { route: r.origin + '-' + r.destination, delay: r.delay };
  }`,
  'steps/classify.ts': `export default function classify(r: { delay: number }, p: { lateAfter: number }) {
    return { ...r, late: r.delay > p.lateAfter };
  }`,
};
