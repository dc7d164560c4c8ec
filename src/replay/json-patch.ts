/**
 * RFC 6902 JSON Patch between two JSON values: {@link diffJson} computes the operations that turn
 * one value into another, {@link applyPatch} applies operations (to check a diff, or to show what
 * a what-if changed). Paths are RFC 6901 JSON Pointers (`/legs/3/delay`, `~0` for `~`, `~1` for
 * `/`).
 *
 * The diff is simple and exact rather than minimal: objects are compared key by key (sorted, so
 * the same two values always give the same patch); arrays index by index — a common prefix is
 * kept, changed elements are replaced or diffed in place, extra elements are added at the end or
 * removed from the end (highest index first, so that every operation's index is valid when it is
 * applied); values of different types, and scalars that differ, are replaced. Byte arrays
 * (`Uint8Array`) are compared by content and replaced whole.
 */
import { ProvenantError } from '../errors.js';

/** One RFC 6902 operation, as this module produces them (`add`, `remove`, `replace`) or applies them (also `test`, `move`, `copy`). */
export type JsonPatchOperation =
  | { readonly op: 'add'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string }
  | { readonly op: 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'test'; readonly path: string; readonly value: unknown }
  | { readonly op: 'move'; readonly from: string; readonly path: string }
  | { readonly op: 'copy'; readonly from: string; readonly path: string };

/** Escape one reference token of a JSON Pointer (RFC 6901). */
export function escapePointerToken(token: string): string {
  return token.includes('~') || token.includes('/') ? token.replace(/~/g, '~0').replace(/\//g, '~1') : token;
}

/** The reference tokens of a JSON Pointer (`''` is the whole document). */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw patchError(`"${pointer}" is not a JSON Pointer (it must be empty or start with "/")`, pointer);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Deep equality of JSON values (and byte arrays, by content). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.compare(a, b) === 0;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k) || !jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/**
 * The RFC 6902 operations that turn `from` into `to` (an empty array when they are equal).
 * @example
 * diffJson({ a: 1, b: [1, 2] }, { a: 2, b: [1] })
 * // [{ op: 'replace', path: '/a', value: 2 }, { op: 'remove', path: '/b/1' }]
 */
export function diffJson(from: unknown, to: unknown): JsonPatchOperation[] {
  const ops: JsonPatchOperation[] = [];
  diffInto(from, to, '', ops);
  return ops;
}

function diffInto(a: unknown, b: unknown, path: string, ops: JsonPatchOperation[]): void {
  if (a === b) return;
  if (Array.isArray(a) && Array.isArray(b)) {
    const common = Math.min(a.length, b.length);
    for (let i = 0; i < common; i++) diffInto(a[i], b[i], `${path}/${i}`, ops);
    for (let i = common; i < b.length; i++) ops.push({ op: 'add', path: `${path}/${i}`, value: b[i] });
    for (let i = a.length - 1; i >= common; i--) ops.push({ op: 'remove', path: `${path}/${i}` });
    return;
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = new Set<string>();
    for (const k of Object.keys(a)) if (a[k] !== undefined) keys.add(k);
    for (const k of Object.keys(b)) if (b[k] !== undefined) keys.add(k);
    for (const k of [...keys].sort()) {
      const p = `${path}/${escapePointerToken(k)}`;
      const inA = a[k] !== undefined && Object.prototype.hasOwnProperty.call(a, k);
      const inB = b[k] !== undefined && Object.prototype.hasOwnProperty.call(b, k);
      if (inA && inB) diffInto(a[k], b[k], p, ops);
      else if (inB) ops.push({ op: 'add', path: p, value: b[k] });
      else ops.push({ op: 'remove', path: p });
    }
    return;
  }
  if (!jsonEqual(a, b)) ops.push({ op: 'replace', path, value: b });
}

/** The value at a JSON Pointer in a document, or undefined when there is none. */
export function valueAt(doc: unknown, pointer: string): unknown {
  let v = doc;
  for (const t of parsePointer(pointer)) {
    if (Array.isArray(v)) {
      if (!/^(0|[1-9][0-9]*)$/.test(t)) return undefined;
      v = v[Number(t)];
    } else if (isPlainObject(v) && Object.prototype.hasOwnProperty.call(v, t)) v = v[t];
    else return undefined;
  }
  return v;
}

function patchError(message: string, path: string): ProvenantError {
  return new ProvenantError('INPUT_INVALID', `JSON patch: ${message}`, { context: { path } });
}

function clone<T>(v: T): T {
  return v instanceof Uint8Array ? (new Uint8Array(v) as T) : (structuredClone(v) as T);
}

/** The container a pointer's last token is in, and that token. */
function locate(doc: unknown, pointer: string): { parent: unknown; key: string } {
  const tokens = parsePointer(pointer);
  const key = tokens.pop() as string;
  let parent = doc;
  for (const t of tokens) {
    if (Array.isArray(parent)) {
      const i = arrayIndex(t, parent.length, false, pointer);
      parent = parent[i];
    } else if (isPlainObject(parent) && Object.prototype.hasOwnProperty.call(parent, t)) {
      parent = parent[t];
    } else {
      throw patchError(`path ${pointer} does not exist`, pointer);
    }
  }
  return { parent, key };
}

function arrayIndex(token: string, length: number, forAdd: boolean, pointer: string): number {
  if (forAdd && token === '-') return length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw patchError(`"${token}" is not an array index in ${pointer}`, pointer);
  const i = Number(token);
  if (i > length || (!forAdd && i === length)) throw patchError(`index ${i} is out of bounds in ${pointer}`, pointer);
  return i;
}

function get(doc: unknown, pointer: string): unknown {
  if (pointer === '') return doc;
  const { parent, key } = locate(doc, pointer);
  if (Array.isArray(parent)) return parent[arrayIndex(key, parent.length, false, pointer)];
  if (isPlainObject(parent) && Object.prototype.hasOwnProperty.call(parent, key)) return parent[key];
  throw patchError(`path ${pointer} does not exist`, pointer);
}

/**
 * Apply RFC 6902 operations to a value and return the result (the input is not changed). Each
 * operation applies to the result of the previous one; `test` compares with {@link jsonEqual}.
 * @throws ProvenantError INPUT_INVALID naming the path, when an operation cannot be applied
 */
export function applyPatch(document: unknown, operations: readonly JsonPatchOperation[]): unknown {
  let doc = clone(document);
  const add = (pointer: string, value: unknown): void => {
    if (pointer === '') {
      doc = value;
      return;
    }
    const { parent, key } = locate(doc, pointer);
    if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent.length, true, pointer), 0, value);
    // defineProperty, not assignment: a "__proto__" key is data, never the prototype.
    else if (isPlainObject(parent)) Object.defineProperty(parent, key, { value, writable: true, enumerable: true, configurable: true });
    else throw patchError(`the parent of ${pointer} is not a container`, pointer);
  };
  const remove = (pointer: string): unknown => {
    if (pointer === '') throw patchError('cannot remove the whole document', pointer);
    const { parent, key } = locate(doc, pointer);
    if (Array.isArray(parent)) return parent.splice(arrayIndex(key, parent.length, false, pointer), 1)[0];
    if (isPlainObject(parent) && Object.prototype.hasOwnProperty.call(parent, key)) {
      const v = parent[key];
      delete parent[key];
      return v;
    }
    throw patchError(`path ${pointer} does not exist`, pointer);
  };
  for (const op of operations) {
    switch (op.op) {
      case 'add':
        add(op.path, clone(op.value));
        break;
      case 'remove':
        remove(op.path);
        break;
      case 'replace':
        get(doc, op.path);
        if (op.path === '') doc = clone(op.value);
        else {
          remove(op.path);
          add(op.path, clone(op.value));
        }
        break;
      case 'test':
        if (!jsonEqual(get(doc, op.path), op.value)) throw patchError(`test failed at ${op.path}`, op.path);
        break;
      case 'move': {
        if (op.path.startsWith(`${op.from}/`)) throw patchError(`cannot move ${op.from} into itself`, op.path);
        add(op.path, remove(op.from));
        break;
      }
      case 'copy':
        add(op.path, clone(get(doc, op.from)));
        break;
      default:
        throw patchError(`unknown operation ${JSON.stringify((op as { op?: unknown }).op)}`, (op as { path?: string }).path ?? '');
    }
  }
  return doc;
}
