/**
 * Materialization: which derived versions keep their bytes. A policy is set for the whole store or
 * per step; pins override it; `gc` deletes the bytes that policy no longer keeps (never an
 * original's, never a pinned version's) and every version stays obtainable by recomputation.
 */
import { ProvenantError } from '../errors.js';
import type { ContentHash } from '../hash/canonical.js';
import { nowUs } from '../ids.js';
import type { ObjectVersionRecord, VersionUsage } from '../store/records.js';
import type { Store } from '../store/store.js';
import { readVersion } from './asof.js';
import { asOfMicros, parseTime, validateObjectId } from './refs.js';
import { describeVersion, notFoundAt, resolveVersion, type ObjectVersion } from './versions.js';

/**
 * A materialization policy:
 * - `all`: keep every version's bytes (the default);
 * - `none`: keep no derived version's bytes (originals and pinned ones are always kept);
 * - `every:<k>`: keep the k-th, 2k-th… version of each object;
 * - `cost:<ms per KiB>`: keep a version when recomputing it costs more than its bytes are worth:
 *   recompute time (its execution and those of inputs not kept, measured at capture) × how often it
 *   was read (at least once) > the price × its size in KiB.
 */
export type MaterializationPolicy =
  | { readonly kind: 'all' }
  | { readonly kind: 'none' }
  | { readonly kind: 'every'; readonly k: number }
  | { readonly kind: 'cost'; readonly msPerKiB: number };

/** Parse `all`, `none`, `every:<k>` or `cost:<ms per KiB>`. @throws ProvenantError INPUT_INVALID */
export function parsePolicy(text: string): MaterializationPolicy {
  const t = text.trim();
  if (t === 'all' || t === 'keep-all') return { kind: 'all' };
  if (t === 'none' || t === 'keep-none') return { kind: 'none' };
  const every = /^every:(\d+)$/.exec(t);
  if (every !== null && Number(every[1]) >= 1) return { kind: 'every', k: Number(every[1]) };
  const cost = /^cost(?::(\d+(?:\.\d+)?))?$/.exec(t);
  if (cost !== null) return { kind: 'cost', msPerKiB: cost[1] === undefined ? 1 : Number(cost[1]) };
  throw new ProvenantError('INPUT_INVALID', `materialization policy ${JSON.stringify(text)} is not one of all, none, every:<k>, cost[:<ms per KiB>]`, {
    hint: 'For example: provenant policy set every:10, or provenant policy set none --step enrich',
    context: { policy: text },
  });
}

/** The text form of a policy. */
export function formatPolicy(p: MaterializationPolicy): string {
  switch (p.kind) {
    case 'all':
    case 'none':
      return p.kind;
    case 'every':
      return `every:${p.k}`;
    case 'cost':
      return `cost:${p.msPerKiB}`;
  }
}

/**
 * Set the policy of the store (`step` undefined) or of one step's versions.
 * @throws ProvenantError INPUT_INVALID
 */
export async function setPolicy(store: Store, policy: string | MaterializationPolicy, options: { step?: string } = {}): Promise<void> {
  const parsed = typeof policy === 'string' ? parsePolicy(policy) : policy;
  await store.setMaterialization({ scope: options.step === undefined ? 'store' : `step:${options.step}`, policy: formatPolicy(parsed), setUs: nowUs() });
}

/** The current policies: the store's and each step's own. */
export async function listPolicies(store: Store): Promise<{ store: MaterializationPolicy; steps: Record<string, MaterializationPolicy> }> {
  const settings = await store.listMaterialization();
  let storePolicy: MaterializationPolicy = { kind: 'all' };
  const steps: Record<string, MaterializationPolicy> = {};
  for (const s of settings) {
    if (s.scope === 'store') storePolicy = parsePolicy(s.policy);
    else if (s.scope.startsWith('step:')) steps[s.scope.slice(5)] = parsePolicy(s.policy);
  }
  return { store: storePolicy, steps };
}

/** A decision for one derived version. */
export interface KeepDecision {
  readonly version: ObjectVersionRecord;
  readonly keep: boolean;
  readonly why: string;
}

/** Decide, for every derived version, whether policy keeps its bytes (in commit order, so inputs are decided first). */
export async function decideKeeps(store: Store): Promise<KeepDecision[]> {
  const policies = await listPolicies(store);
  const usage = await store.listVersionUsage();
  const decisions: KeepDecision[] = [];
  const keptAfter = new Map<string, boolean>();
  /** Recompute cost (µs) of each version given the decisions so far: its execution plus its dropped inputs'. */
  const cost = new Map<string, number>();
  for (const u of usage) {
    const v = u.version;
    const policy = policies.steps[u.stepId] ?? policies.store;
    let recompute = u.durationUs;
    for (const input of v.inputVersionIds) if (keptAfter.get(input) === false) recompute += cost.get(input) ?? 0;
    cost.set(v.versionId, recompute);
    const decision = decide(policy, u, recompute);
    keptAfter.set(v.versionId, decision.keep);
    decisions.push({ version: v, ...decision });
  }
  return decisions;
}

function decide(policy: MaterializationPolicy, u: VersionUsage, recomputeUs: number): { keep: boolean; why: string } {
  if (u.version.pinned) return { keep: true, why: 'pinned' };
  switch (policy.kind) {
    case 'all':
      return { keep: true, why: 'policy all' };
    case 'none':
      return { keep: false, why: 'policy none' };
    case 'every':
      return u.version.ordinal % policy.k === 0 ? { keep: true, why: `every ${policy.k}th version` } : { keep: false, why: `not a multiple of ${policy.k}` };
    case 'cost': {
      const value = (recomputeUs / 1000) * Math.max(1, u.reads);
      const price = policy.msPerKiB * (u.version.size / 1024);
      return value > price
        ? { keep: true, why: `recompute ${(recomputeUs / 1000).toFixed(3)} ms × ${Math.max(1, u.reads)} reads > ${price.toFixed(3)} ms of storage` }
        : { keep: false, why: `recompute ${(recomputeUs / 1000).toFixed(3)} ms × ${Math.max(1, u.reads)} reads ≤ ${price.toFixed(3)} ms of storage` };
    }
  }
}

/** What {@link gc} did. */
export interface GcResult {
  /** Derived versions considered. */
  readonly versions: number;
  /** Versions whose bytes policy keeps. */
  readonly keptByPolicy: number;
  /** Versions whose bytes were deleted now (or would be, with `dryRun`). */
  readonly dropped: number;
  readonly bytesFreed: number;
  readonly blobsDeleted: number;
  readonly dryRun: boolean;
}

/**
 * Delete the bytes of derived versions that policy no longer keeps. Never an original's, never a
 * pinned version's, never bytes anything else still refers to (the store checks). Every version
 * remains obtainable: it is recomputed from kept ancestors when read.
 */
export async function gc(store: Store, options: { dryRun?: boolean } = {}): Promise<GcResult> {
  const decisions = await decideKeeps(store);
  const keepHashes = new Set<ContentHash>();
  for (const d of decisions) if (d.keep) keepHashes.add(d.version.contentHash);
  const drop = new Map<ContentHash, number>();
  let dropped = 0;
  for (const d of decisions) {
    if (d.keep || keepHashes.has(d.version.contentHash)) continue;
    if (!(await store.hasBlob(d.version.contentHash))) continue;
    dropped++;
    drop.set(d.version.contentHash, d.version.size);
  }
  const keptByPolicy = decisions.filter((d) => d.keep).length;
  if (options.dryRun === true) {
    return { versions: decisions.length, keptByPolicy, dropped, bytesFreed: [...drop.values()].reduce((a, b) => a + b, 0), blobsDeleted: drop.size, dryRun: true };
  }
  const result = await store.dropBlobs([...drop.keys()]);
  const deleted = new Set(result.dropped);
  return {
    versions: decisions.length,
    keptByPolicy,
    dropped: decisions.filter((d) => !d.keep && deleted.has(d.version.contentHash)).length,
    bytesFreed: result.bytes,
    blobsDeleted: result.dropped.length,
    dryRun: false,
  };
}

/**
 * Pin the version of an object current at a time (`objectId@<time>`, `objectId@<versionId>`, or an
 * object id for its current version): its bytes are kept whatever the policy, and stored again now
 * if they had been collected (recomputed and verified first). Unpin with `pinned: false`.
 */
export async function materialize(store: Store, ref: string, options: { pinned?: boolean } = {}): Promise<ObjectVersion> {
  const version = await versionForRef(store, ref);
  const pinned = options.pinned ?? true;
  if (pinned && !(await store.hasBlob(version.contentHash))) {
    const { value } = await readVersion(store, version, {});
    await store.putBlob(value.bytes);
  }
  await store.setPinned(version.versionId, pinned);
  const after = await store.getObjectVersion(version.versionId);
  return describeVersion(store, after ?? version);
}

/** `objectId`, `objectId@versionId` or `objectId@<time>` (ISO 8601 or epoch ms). */
async function versionForRef(store: Store, ref: string): Promise<ObjectVersionRecord> {
  const at = ref.lastIndexOf('@');
  if (at < 0) return resolveVersion(store, ref);
  const tail = ref.slice(at + 1);
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(tail)) return resolveVersion(store, ref);
  const objectId = validateObjectId(ref.slice(0, at));
  const atUs = asOfMicros(parseTime(tail));
  const found = await store.objectVersionAt(objectId, atUs);
  if (found === undefined) throw await notFoundAt(store, objectId, atUs);
  return found;
}
