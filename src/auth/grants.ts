/**
 * Access grants: what a bearer token allows. A grant is `<right>:<pattern>`.
 *
 * Rights, and what their pattern is matched against:
 * - `read`    — object ids: an object's data (`GET /data/…`, as of any time) and its versions.
 * - `lineage` — object ids: an object's lineage graph (`GET /lineage/…`); the nodes of objects the
 *   caller may neither `read` nor `lineage` are cut from the answer.
 * - `stream`  — stream ids: a stream's checkpoints and the executions recorded over it.
 * - `replay`  — stream ids: start replays and what-ifs over the stream, read their progress and results.
 * - `export`  — object ids: export lineage in other formats (PROV, OpenLineage, Cypher).
 * - `steps`   — step ids: see a step's recorded versions (`GET /steps`).
 *
 * A pattern is matched against the whole id; `*` stands for any run of characters, `/` included
 * (`customers/*` covers `customers/42` and `customers/eu/42`; `*` alone covers everything); every
 * other character stands for itself. A grant never covers more than its right.
 */
import { ProvenantError } from '../errors.js';

/** The rights a grant can give. */
export const RIGHTS = ['read', 'lineage', 'stream', 'replay', 'export', 'steps'] as const;

/** A right a grant can give. */
export type Right = (typeof RIGHTS)[number];

/** A parsed grant. */
export interface Grant {
  readonly right: Right;
  readonly pattern: string;
  /** The grant as written: `read:customers/*`. */
  readonly text: string;
}

const MAX_PATTERN = 512;

/**
 * Parse `<right>:<pattern>`.
 * @throws ProvenantError INPUT_INVALID naming the grant, for an unknown right or an empty or malformed pattern
 */
export function parseGrant(text: string): Grant {
  const colon = text.indexOf(':');
  const right = colon < 0 ? text : text.slice(0, colon);
  const pattern = colon < 0 ? '' : text.slice(colon + 1);
  if (!(RIGHTS as readonly string[]).includes(right)) {
    throw new ProvenantError('INPUT_INVALID', `grant "${text}" has no known right; write <right>:<pattern> with right one of ${RIGHTS.join(', ')}`, {
      hint: "For example --grant 'read:customers/*' --grant 'replay:orders'.",
      context: { grant: text },
    });
  }
  // eslint-disable-next-line no-control-regex
  if (pattern.length === 0 || pattern.length > MAX_PATTERN || /[\u0000-\u001f\u007f]/.test(pattern)) {
    throw new ProvenantError('INPUT_INVALID', `grant "${text}" needs a pattern of 1 to ${MAX_PATTERN} characters without control characters after "${right}:"`, {
      hint: `Write e.g. ${right}:* for everything, or ${right}:customers/* for ids starting with customers/.`,
      context: { grant: text },
    });
  }
  return Object.freeze({ right: right as Right, pattern, text: `${right}:${pattern}` });
}

/** Whether `pattern` (with `*` for any run of characters) covers the whole of `id`. */
export function patternCovers(pattern: string, id: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === id;
  const first = parts[0] as string;
  const last = parts[parts.length - 1] as string;
  if (id.length < first.length + last.length || !id.startsWith(first) || !id.endsWith(last)) return false;
  let at = first.length;
  const end = id.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i] as string;
    const found = id.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}

/** A caller's grants, asked whether they cover a right on an id. */
export class Grants {
  readonly #grants: readonly Grant[];

  constructor(grants: readonly Grant[]) {
    this.#grants = Object.freeze([...grants]);
  }

  /** Parse grants as written. @throws ProvenantError INPUT_INVALID for a malformed one */
  static parse(texts: readonly string[]): Grants {
    return new Grants(texts.map(parseGrant));
  }

  /** Every grant, as written. */
  get texts(): string[] {
    return this.#grants.map((g) => g.text);
  }

  /** The first grant of `right` that covers `id`, or undefined: what to record as the right used. */
  covering(right: Right, id: string): Grant | undefined {
    for (const g of this.#grants) if (g.right === right && patternCovers(g.pattern, id)) return g;
    return undefined;
  }

  /** Whether some grant of `right` covers `id`. */
  allows(right: Right, id: string): boolean {
    return this.covering(right, id) !== undefined;
  }

  /** Whether the caller holds `right` over every id (`<right>:*`). */
  allowsAll(right: Right): boolean {
    return this.#grants.some((g) => g.right === right && g.pattern === '*');
  }
}
