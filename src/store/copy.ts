/**
 * Copying a whole store to another, of either backend (`provenant copy --from --to`), so that a
 * team can start embedded and move to PostgreSQL (or take a PostgreSQL store home). Everything
 * goes across with its ids, times and record hashes: blobs, step versions, runs and their ends,
 * executions with their dead letters, embedded stream logs, checkpoints, object versions (with
 * their inputs, ordinals and transaction times), pins and materialization settings. Not copied:
 * the log of object reads (counts used by the cost-based policy start again at zero) and the
 * history of pin/unpin changes (the current pins are copied). A copy is idempotent:
 * what the target already holds is skipped, so an interrupted copy is finished by running it
 * again. At the end, every record hash and every copied blob is checked on the target.
 *
 * Order matters only where the target checks references: blobs first (step versions need their
 * artifacts, checkpoints their pipeline and state values), then steps, runs, executions, stream
 * logs and checkpoints.
 */
import { ProvenantError } from '../errors.js';
import type { ContentHash } from '../hash/canonical.js';
import type { CheckpointRecord, ExecutionRecord, ObjectVersionRecord, RunInfo, StreamValue } from './records.js';
import type { Store } from './store.js';

/** What {@link copyStore} did, per kind of record. */
export interface CopyReport {
  readonly from: string;
  readonly to: string;
  /** Per kind: how many the source holds, and how many were copied now (the rest were already there). */
  readonly counts: {
    readonly blobs: CopyCount;
    readonly stepVersions: CopyCount;
    readonly runs: CopyCount;
    readonly runEnds: CopyCount;
    readonly executions: CopyCount;
    readonly deadLetters: CopyCount;
    readonly streamEntries: CopyCount;
    readonly checkpoints: CopyCount;
    readonly objectVersions: CopyCount;
    readonly materializationSettings: CopyCount;
  };
  /** The check on the target after the copy. */
  readonly verification: {
    /** Executions whose record hash on the target equals the source's. */
    readonly executions: number;
    /** Ended checkpoints whose record hash on the target equals the source's. */
    readonly checkpoints: number;
    /** Blobs read back from the target and verified against their hash. */
    readonly blobs: number;
    /** Stream entries with the same offset, hash, encoding and time on both sides. */
    readonly streamEntries: number;
    /** Object versions whose record hash (and pin) on the target equals the source's. */
    readonly objectVersions: number;
    readonly ok: boolean;
    /** What differed (empty when ok). */
    readonly mismatches: readonly string[];
  };
}

/** Counts of one kind of record. */
export interface CopyCount {
  readonly source: number;
  readonly copied: number;
}

/** Options of {@link copyStore}. */
export interface CopyOptions {
  /** Records per batch. Default 2000. */
  readonly pageSize?: number;
  /** Called as each phase progresses. */
  readonly onProgress?: (phase: string, done: number) => void;
}

const LARGE_BLOB = 4 * 1024 * 1024;

/**
 * Copy everything from `from` into `to` and verify the copy.
 * @throws ProvenantError TAMPERED when the verification finds a difference (the report is in its context)
 */
export async function copyStore(from: Store, to: Store, options: CopyOptions = {}): Promise<CopyReport> {
  const page = options.pageSize ?? 2000;
  const progress = options.onProgress ?? (() => undefined);
  const counter = (): { source: number; copied: number } => ({ source: 0, copied: 0 });
  const counts = {
    blobs: counter(),
    stepVersions: counter(),
    runs: counter(),
    runEnds: counter(),
    executions: counter(),
    deadLetters: counter(),
    streamEntries: counter(),
    checkpoints: counter(),
    objectVersions: counter(),
    materializationSettings: counter(),
  };

  // Blobs, in hash order, a page at a time; large ones streamed.
  let afterHash: ContentHash | undefined;
  for (;;) {
    const list = await from.listBlobs({ ...(afterHash === undefined ? {} : { afterHash }), limit: page });
    if (list.length === 0) break;
    afterHash = list[list.length - 1]?.hash;
    const values: { hash: ContentHash; bytes: Uint8Array }[] = [];
    for (const b of list) {
      counts.blobs.source++;
      if (await to.hasBlob(b.hash)) continue;
      counts.blobs.copied++;
      if (b.size > LARGE_BLOB) {
        const { hash } = await to.putBlobStream(await from.openBlobStream(b.hash));
        if (hash !== b.hash) throw new ProvenantError('TAMPERED', `blob ${b.hash} of ${from.location} read back as ${hash}`, { context: { hash: b.hash } });
      } else {
        values.push({ hash: b.hash, bytes: await from.getBlob(b.hash) });
      }
    }
    if (values.length > 0) await to.appendExecutions({ executions: [], values });
    progress('blobs', counts.blobs.source);
  }

  // Step versions (their artifacts are blobs, copied above).
  for (const step of await from.listSteps()) {
    for (const v of step.versions) {
      counts.stepVersions.source++;
      if ((await to.getStepVersion(v.stepId, v.versionHash)) !== undefined) continue;
      await to.registerStepVersion({ stepId: v.stepId, versionHash: v.versionHash, manifest: v.manifest, firstSeenUs: v.firstSeenUs, firstRunId: v.firstRunId });
      counts.stepVersions.copied++;
    }
  }

  // Runs, oldest first (so that the target lists them in the same order), then their ends.
  const runs = (await from.listRuns(Number.MAX_SAFE_INTEGER)).reverse();
  for (const run of runs) {
    counts.runs.source++;
    const there = await to.getRun(run.id);
    if (there === undefined) {
      const { end: _end, ...record } = run;
      await to.createRun(record);
      counts.runs.copied++;
    }
  }
  progress('runs', counts.runs.source);

  // Executions in id order, with their dead letters in the same batch.
  const deadByExecution = new Map<string, string>();
  for (const d of await from.listDeadLetters()) deadByExecution.set(d.executionId, d.reason);
  const targetHadExecutions = (await to.countExecutions()) > 0;
  let afterId: string | undefined;
  for (;;) {
    const list = await from.listExecutions({ ...(afterId === undefined ? {} : { afterId }), limit: page });
    if (list.length === 0) break;
    afterId = list[list.length - 1]?.id;
    counts.executions.source += list.length;
    let fresh: ExecutionRecord[] = list;
    if (targetHadExecutions) {
      fresh = [];
      for (const e of list) if ((await to.getExecution(e.id)) === undefined) fresh.push(e);
    }
    for (const e of list) if (deadByExecution.has(e.id)) counts.deadLetters.source++;
    if (fresh.length > 0) {
      const deadLetters = fresh.filter((e) => deadByExecution.has(e.id)).map((e) => ({ executionId: e.id, reason: deadByExecution.get(e.id) as string }));
      await to.appendExecutions({ executions: fresh, values: [], deadLetters });
      counts.executions.copied += fresh.length;
      counts.deadLetters.copied += deadLetters.length;
    }
    progress('executions', counts.executions.source);
  }

  // Run ends after their executions.
  for (const run of runs) {
    if (run.end === null) continue;
    counts.runEnds.source++;
    if (((await to.getRun(run.id))?.end ?? null) !== null) continue;
    await to.endRun(run.end);
    counts.runEnds.copied++;
  }

  // Embedded stream logs: the target continues where it is; entries keep their append times.
  for (const s of await from.listStreams()) {
    const there = (await to.getStream(s.streamId))?.length ?? 0;
    counts.streamEntries.source += s.length;
    for (let at = there; at < s.length; ) {
      const entries = await from.readStream(s.streamId, { from: at, limit: page });
      if (entries.length === 0) break;
      // Entries appended together share a time: append each such group with it.
      let i = 0;
      while (i < entries.length) {
        const t = (entries[i] as (typeof entries)[number]).appendedUs;
        const group: StreamValue[] = [];
        while (i < entries.length && (entries[i] as (typeof entries)[number]).appendedUs === t) {
          const e = entries[i] as (typeof entries)[number];
          group.push({ hash: e.hash, bytes: await from.getBlob(e.hash), encoding: e.encoding });
          i++;
        }
        await to.appendToStream(s.streamId, group, { appendedUs: t });
        counts.streamEntries.copied += group.length;
      }
      at += entries.length;
    }
  }

  // Checkpoints in the order they were opened; an end the target lacks is appended.
  const checkpoints = await allCheckpointsOf(from, page);
  for (const cp of checkpoints) {
    counts.checkpoints.source++;
    const there = await to.getCheckpoint(cp.checkpointId);
    const { status: _s, end, recordHash: _h, ...begin } = cp;
    if (there === undefined) {
      await to.applyCheckpoint({ begin });
      if (end !== null) await to.applyCheckpoint({ end });
    } else if (there.end === null && end !== null) await to.applyCheckpoint({ end });
    else continue;
    counts.checkpoints.copied++;
  }
  progress('checkpoints', counts.checkpoints.source);

  // Object versions, each after the versions it was made from, keeping ids, ordinals and times.
  const versions = await allVersionsOf(from);
  const byId = new Map(versions.map((v) => [v.versionId, v]));
  const placed = new Set<string>();
  const place = async (v: ObjectVersionRecord): Promise<void> => {
    if (placed.has(v.versionId)) return;
    placed.add(v.versionId);
    for (const input of v.inputVersionIds) {
      const iv = byId.get(input);
      if (iv !== undefined) await place(iv);
    }
    counts.objectVersions.source++;
    const there = await to.getObjectVersion(v.versionId);
    if (there === undefined) {
      await to.commitObjectVersions({
        versions: [
          {
            versionId: v.versionId,
            objectId: v.objectId,
            contentHash: v.contentHash,
            encoding: v.encoding,
            contentType: v.contentType,
            size: v.size,
            executionId: v.executionId,
            inputVersionIds: v.inputVersionIds,
            validFromUs: v.validFromUs,
          },
        ],
        executions: [],
        values: [],
      });
      counts.objectVersions.copied++;
    }
    if (v.pinned && !(there?.pinned ?? false)) await to.setPinned(v.versionId, true);
  };
  for (const v of versions) await place(v);
  const settings = await from.listMaterialization();
  const settingsThere = await to.listMaterialization();
  for (const m of settings) {
    counts.materializationSettings.source++;
    const t = settingsThere.find((x) => x.scope === m.scope);
    if (t !== undefined && t.policy === m.policy && t.setUs === m.setUs) continue;
    await to.setMaterialization(m);
    counts.materializationSettings.copied++;
  }
  progress('object versions', counts.objectVersions.source);

  const verification = await verifyCopy(from, to, runs, checkpoints, versions, page);
  const report: CopyReport = { from: from.location, to: to.location, counts, verification };
  if (!verification.ok) {
    throw new ProvenantError('TAMPERED', `the copy in ${to.location} differs from ${from.location}: ${verification.mismatches.slice(0, 3).join('; ')}`, {
      hint: 'Nothing in the source was changed. Inspect the differences named; running the copy again fills in what is missing.',
      context: { report },
    });
  }
  return report;
}

async function allCheckpointsOf(store: Store, page: number): Promise<CheckpointRecord[]> {
  const out: CheckpointRecord[] = [];
  for (;;) {
    const last = out[out.length - 1];
    const list = await store.listCheckpoints({ ...(last === undefined ? {} : { afterId: last.checkpointId }), limit: page });
    out.push(...list);
    if (list.length < page) return out;
  }
}

/** Every object version of a store, in commit order per object (objects by id). */
async function allVersionsOf(store: Store): Promise<ObjectVersionRecord[]> {
  const out: ObjectVersionRecord[] = [];
  for (const o of await store.listObjects({ limit: Number.MAX_SAFE_INTEGER })) out.push(...(await store.listObjectVersions(o.objectId, { limit: Number.MAX_SAFE_INTEGER })));
  return out.sort((a, b) => a.validFromUs - b.validFromUs);
}

async function verifyCopy(
  from: Store,
  to: Store,
  runs: readonly RunInfo[],
  checkpoints: readonly CheckpointRecord[],
  versions: readonly ObjectVersionRecord[],
  page: number,
): Promise<CopyReport['verification']> {
  const mismatches: string[] = [];
  const note = (m: string): void => {
    if (mismatches.length < 100) mismatches.push(m);
  };
  // Every execution: same record hash (the target computed it itself from the copied fields).
  let executions = 0;
  let afterId: string | undefined;
  for (;;) {
    const list = await from.listExecutions({ ...(afterId === undefined ? {} : { afterId }), limit: page });
    if (list.length === 0) break;
    afterId = list[list.length - 1]?.id;
    for (const e of list) {
      const there = await to.getExecution(e.id);
      if (there === undefined) note(`execution ${e.id} is missing`);
      else if (there.recordHash !== e.recordHash) note(`execution ${e.id}: record hash ${there.recordHash} ≠ ${e.recordHash}`);
      else executions++;
    }
  }
  let verifiedCheckpoints = 0;
  for (const cp of checkpoints) {
    const there = await to.getCheckpoint(cp.checkpointId);
    if (there === undefined) note(`checkpoint ${cp.checkpointId} is missing`);
    else if (there.status !== cp.status || there.recordHash !== cp.recordHash) note(`checkpoint ${cp.checkpointId}: ${there.status} ${there.recordHash} ≠ ${cp.status} ${cp.recordHash}`);
    else if (cp.end !== null) verifiedCheckpoints++;
  }
  for (const run of runs) {
    const there = await to.getRun(run.id);
    if (there === undefined || JSON.stringify(there) !== JSON.stringify(run)) note(`run ${run.id} differs`);
  }
  // Every blob of the source, read back from the target (each read verifies the hash).
  let blobs = 0;
  let afterHash: ContentHash | undefined;
  for (;;) {
    const list = await from.listBlobs({ ...(afterHash === undefined ? {} : { afterHash }), limit: page });
    if (list.length === 0) break;
    afterHash = list[list.length - 1]?.hash;
    for (const b of list) {
      try {
        if (b.size > LARGE_BLOB) {
          const stream = await to.openBlobStream(b.hash);
          for await (const _chunk of stream) void _chunk;
        } else {
          await to.getBlob(b.hash);
        }
        blobs++;
      } catch (err) {
        note(`blob ${b.hash}: ${(err as Error).message}`);
      }
    }
  }
  let streamEntries = 0;
  for (const s of await from.listStreams()) {
    for (let at = 0; at < s.length; ) {
      const a = await from.readStream(s.streamId, { from: at, limit: page });
      const b = await to.readStream(s.streamId, { from: at, limit: page });
      if (a.length === 0) break;
      a.forEach((e, i) => {
        const t = b[i];
        if (t === undefined || t.offset !== e.offset || t.hash !== e.hash || t.encoding !== e.encoding || t.appendedUs !== e.appendedUs) {
          note(`stream ${s.streamId} offset ${e.offset} differs`);
        } else streamEntries++;
      });
      at += a.length;
    }
  }
  let objectVersions = 0;
  for (const v of versions) {
    const there = await to.getObjectVersion(v.versionId);
    if (there === undefined) note(`object version ${v.versionId} is missing`);
    else if (there.recordHash !== v.recordHash || there.pinned !== v.pinned) note(`object version ${v.versionId} (${v.objectId}) differs`);
    else objectVersions++;
  }
  const deadFrom = (await from.listDeadLetters()).length;
  const deadTo = new Set((await to.listDeadLetters()).map((d) => d.executionId));
  if (deadTo.size < deadFrom) note(`dead letters: ${deadTo.size} on the target, ${deadFrom} in the source`);
  return { executions, checkpoints: verifiedCheckpoints, blobs, streamEntries, objectVersions, ok: mismatches.length === 0, mismatches };
}
