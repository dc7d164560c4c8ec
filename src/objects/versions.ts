/**
 * Objects and their versions: ingesting original data (`putObject`), making a version from other
 * versions with a recorded step execution (`deriveObject`), and listing versions.
 */
import type { Run } from '../capture/run.js';
import { currentContext } from '../capture/context.js';
import { toRecordedError } from '../capture/run.js';
import { ProvenantError } from '../errors.js';
import { canonicalize, encodeValue, sha256, type ContentHash, type EncodedValue, type JsonValue, type ValueEncoding } from '../hash/canonical.js';
import { newId, nowUs, isUuid } from '../ids.js';
import { RecordingTape, nondeterminismJson, withTape } from '../step/determinism.js';
import type { LoadedStep, StepContext } from '../step/runtime.js';
import { deepFreeze } from '../step/call.js';
import type { ExecutionContext, ExecutionWrite, ObjectVersionRecord, ValueWrite } from '../store/records.js';
import type { Store } from '../store/store.js';
import { asOfMicros, isoFromMicros, parseTime, validateObjectId, type TimeInput } from './refs.js';
import { readVersion } from './asof.js';

/** An object version as the library, CLI and HTTP API show it. */
export interface ObjectVersion {
  readonly objectId: string;
  /** UUIDv7. */
  readonly versionId: string;
  /** 1 for the first version of the object, then 2, 3… */
  readonly ordinal: number;
  readonly contentHash: ContentHash;
  readonly encoding: ValueEncoding;
  readonly contentType: string;
  readonly size: number;
  /** Transaction time, ISO 8601: the version is current from then until the next one. */
  readonly validFrom: string;
  readonly validFromUs: number;
  /** The execution that made it; null for ingested original data. */
  readonly executionId: string | null;
  readonly inputVersionIds: readonly string[];
  /** Its bytes are stored (else they are recomputed on read). */
  readonly kept: boolean;
  readonly pinned: boolean;
  readonly recordHash: ContentHash;
}

/** Options of {@link putObject}. */
export interface PutObjectOptions {
  /** Media type. Default: `application/json` for JSON values, `application/octet-stream` for bytes. */
  readonly contentType?: string;
}

/** The public view of a stored version record. */
export async function describeVersion(store: Store, v: ObjectVersionRecord): Promise<ObjectVersion> {
  return {
    objectId: v.objectId,
    versionId: v.versionId,
    ordinal: v.ordinal,
    contentHash: v.contentHash,
    encoding: v.encoding,
    contentType: v.contentType,
    size: v.size,
    validFrom: isoFromMicros(v.validFromUs),
    validFromUs: v.validFromUs,
    executionId: v.executionId,
    inputVersionIds: v.inputVersionIds,
    kept: await store.hasBlob(v.contentHash),
    pinned: v.pinned,
    recordHash: v.recordHash,
  };
}

function defaultContentType(encoding: ValueEncoding): string {
  return encoding === 'bytes' ? 'application/octet-stream' : 'application/json';
}

function valueWrite(value: EncodedValue): ValueWrite {
  return value.text === undefined ? { hash: value.hash, bytes: value.bytes } : { hash: value.hash, bytes: value.bytes, text: value.text };
}

/**
 * Ingest original data as a new version of an object. JSON values are kept in canonical form
 * (RFC 8785); a `Uint8Array` is kept as raw bytes. Originals are always kept.
 * @throws ProvenantError INPUT_INVALID for a malformed id; UnhashableValueError for a value that cannot be canonicalized
 */
export async function putObject(store: Store, objectId: string, data: Uint8Array | JsonValue, options: PutObjectOptions = {}): Promise<ObjectVersion> {
  validateObjectId(objectId);
  const value = encodeValue(data);
  const [record] = await store.commitObjectVersions({
    versions: [
      {
        versionId: newId(),
        objectId,
        contentHash: value.hash,
        encoding: value.encoding,
        contentType: options.contentType ?? defaultContentType(value.encoding),
        size: value.bytes.byteLength,
        executionId: null,
        inputVersionIds: [],
      },
    ],
    executions: [],
    values: [valueWrite(value)],
  });
  return describeVersion(store, record as ObjectVersionRecord);
}

/** An input of a derivation: an object id (its current version), `objectId@versionId`, or a version. */
export type VersionRef = string | ObjectVersion | ObjectVersionRecord;

/**
 * The version a reference names: `objectId` (current now, or at `atUs`), `objectId@versionId`,
 * or a version itself.
 * @throws ProvenantError INPUT_INVALID, NOT_FOUND
 */
export async function resolveVersion(store: Store, ref: VersionRef, atUs?: number): Promise<ObjectVersionRecord> {
  if (typeof ref !== 'string') {
    const found = await store.getObjectVersion(ref.versionId);
    if (found === undefined) throw new ProvenantError('NOT_FOUND', `no object version ${ref.versionId} in ${store.location}`, { context: { versionId: ref.versionId } });
    return found;
  }
  const at = ref.lastIndexOf('@');
  if (at >= 0) {
    const objectId = validateObjectId(ref.slice(0, at));
    const versionId = ref.slice(at + 1);
    if (!isUuid(versionId)) {
      throw new ProvenantError('INPUT_INVALID', `${JSON.stringify(ref)}: the part after "@" must be a version id (UUID)`, { context: { ref } });
    }
    const found = await store.getObjectVersion(versionId);
    if (found === undefined || found.objectId !== objectId) {
      throw new ProvenantError('NOT_FOUND', `object ${objectId} has no version ${versionId}`, {
        hint: `List its versions with \`provenant versions ${objectId}\`.`,
        context: { objectId, versionId, reason: 'unknown-version' },
      });
    }
    return found;
  }
  validateObjectId(ref);
  const found = await store.objectVersionAt(ref, atUs ?? Number.MAX_SAFE_INTEGER);
  if (found === undefined) throw await notFoundAt(store, ref, atUs);
  return found;
}

/** The NOT_FOUND error for an object with no version at a time: unknown, or not yet made then. */
export async function notFoundAt(store: Store, objectId: string, atUs: number | undefined): Promise<ProvenantError> {
  const [first] = await store.listObjectVersions(objectId, { limit: 1 });
  if (first === undefined) {
    return new ProvenantError('NOT_FOUND', `no object ${objectId} in ${store.location}`, {
      hint: 'Ingest it with `provenant put`, or list objects with `provenant objects`.',
      context: { objectId, reason: 'unknown-object' },
    });
  }
  return new ProvenantError('NOT_FOUND', `object ${objectId} did not exist yet at ${isoFromMicros(atUs ?? 0)}: its first version is from ${isoFromMicros(first.validFromUs)}`, {
    hint: `Ask for a time at or after ${isoFromMicros(first.validFromUs)}.`,
    context: { objectId, reason: 'before-first-version', firstVersionAt: isoFromMicros(first.validFromUs) },
  });
}

/** Options of {@link deriveObject}. */
export interface DeriveOptions {
  /** Input versions, in the order the step receives them. */
  readonly inputs: readonly VersionRef[];
  /** The object the output becomes a new version of. */
  readonly output: string;
  readonly params?: JsonValue;
  /** Media type of the output. Default: from its encoding. */
  readonly contentType?: string;
}

/** What {@link deriveObject} made. */
export interface DeriveResult {
  readonly version: ObjectVersion;
  readonly executionId: string;
  /** The output as the step returned it (decoded canonical form). */
  readonly output: unknown;
}

/** A recorded call of a step on values: the execution, the values it refers to, and its output. */
export interface RecordedCall {
  readonly execution: ExecutionWrite;
  readonly values: ValueWrite[];
  readonly output: EncodedValue | undefined;
  readonly error: { message: string } | undefined;
}

/**
 * Call a step on inputs and build its execution record (recording clock reads, random draws and
 * fetches). One input is passed as itself, several as an array (the convention replay uses).
 */
export async function recordCall(
  step: LoadedStep,
  inputs: readonly EncodedValue[],
  decodedInputs: readonly unknown[],
  params: JsonValue,
  run: { readonly id: string; readonly context: ExecutionContext },
): Promise<RecordedCall> {
  const id = newId();
  const context: ExecutionContext = { ...run.context, ...(currentContext() ?? {}) };
  const contextText = canonicalize(context);
  const contextHash = sha256(contextText);
  const paramsValue = encodeValue(params);
  const ctx: StepContext = { stepId: step.stepId, versionHash: step.versionHash, executionId: id, runId: run.id, context };
  const tape = new RecordingTape();
  const startedUs = nowUs();
  let output: EncodedValue | undefined;
  let failure: ReturnType<typeof toRecordedError> | undefined;
  try {
    const input = decodedInputs.length === 1 ? decodedInputs[0] : [...decodedInputs];
    const result = await withTape(tape, () => step.fn(input, deepFreeze(decodeForStep(paramsValue)), ctx));
    const unawaited = tape.close();
    if (unawaited !== undefined) throw unawaited;
    output = encodeValue(result);
  } catch (err) {
    tape.close();
    failure = toRecordedError(err, step.stepId);
  }
  const endedUs = nowUs();
  const values: ValueWrite[] = [...inputs.map(valueWrite), valueWrite(paramsValue), { hash: contextHash, bytes: Buffer.from(contextText, 'utf8'), text: contextText }];
  const reads = tape.toRecord();
  const nondeterminism = reads === null ? undefined : encodeValue(nondeterminismJson(reads));
  if (nondeterminism !== undefined) values.push(valueWrite(nondeterminism));
  if (output !== undefined) values.push(valueWrite(output));
  const errorValue = failure === undefined ? undefined : encodeValue(failure);
  if (errorValue !== undefined) values.push(valueWrite(errorValue));
  const execution: ExecutionWrite = {
    id,
    runId: run.id,
    functionId: step.stepId,
    functionVersionHash: step.versionHash,
    inputHashes: inputs.map((v) => v.hash),
    inputEncodings: inputs.map((v) => v.encoding),
    outputHash: output?.hash ?? null,
    outputEncoding: output?.encoding ?? 'json',
    paramsHash: paramsValue.hash,
    contextHash,
    context,
    startedUs,
    endedUs,
    status: failure === undefined ? 'ok' : 'failed',
    errorHash: errorValue?.hash ?? null,
    nondeterminismHash: nondeterminism?.hash ?? null,
    streamId: null,
    offset: null,
  };
  return { execution, values, output, error: failure };
}

/**
 * Make a new version of `options.output` by running a step on the current (or named) versions of
 * its inputs. The execution, the version and the DAG edges to the inputs commit in one transaction.
 * Inputs whose bytes are not kept are recomputed first (see {@link getAsOf}).
 * @throws ProvenantError STEP_FAILED (the failed execution is recorded), NOT_FOUND, INPUT_INVALID
 */
export async function deriveObject(run: Run, step: LoadedStep, options: DeriveOptions): Promise<DeriveResult> {
  validateObjectId(options.output);
  const store = run.store;
  const versions = await Promise.all(options.inputs.map((ref) => resolveVersion(store, ref)));
  const inputs: EncodedValue[] = [];
  const decoded: unknown[] = [];
  for (const v of versions) {
    const { value } = await readVersion(store, v, {});
    inputs.push(value);
    decoded.push(decodeForStep(value));
  }
  const call = await recordCall(step, inputs, decoded, options.params ?? {}, run);
  if (call.output === undefined) {
    await store.commitObjectVersions({ versions: [], executions: [call.execution], values: call.values });
    throw new ProvenantError('STEP_FAILED', `step ${step.stepId} failed making ${options.output}: ${call.error?.message ?? 'unknown error'}`, {
      hint: `The failed execution ${call.execution.id} is recorded; see it with \`provenant show ${call.execution.id}\`.`,
      context: { stepId: step.stepId, executionId: call.execution.id, objectId: options.output },
    });
  }
  const [record] = await store.commitObjectVersions({
    versions: [
      {
        versionId: newId(),
        objectId: options.output,
        contentHash: call.output.hash,
        encoding: call.output.encoding,
        contentType: options.contentType ?? defaultContentType(call.output.encoding),
        size: call.output.bytes.byteLength,
        executionId: call.execution.id,
        inputVersionIds: versions.map((v) => v.versionId),
      },
    ],
    executions: [call.execution],
    values: call.values,
  });
  return { version: await describeVersion(store, record as ObjectVersionRecord), executionId: call.execution.id, output: decodeForStep(call.output) };
}

/** A stored value as a step receives it: JSON parsed fresh, bytes as a Buffer copy. */
export function decodeForStep(value: EncodedValue): unknown {
  if (value.encoding === 'bytes') return Buffer.from(value.bytes);
  return JSON.parse(value.text ?? Buffer.from(value.bytes).toString('utf8')) as unknown;
}

/**
 * An object's versions, oldest first; with `asOf`, those that existed then.
 * @throws ProvenantError INPUT_INVALID for a malformed id or time
 */
export async function listObjectVersions(store: Store, objectId: string, options: { asOf?: TimeInput } = {}): Promise<ObjectVersion[]> {
  validateObjectId(objectId);
  const untilUs = options.asOf === undefined ? undefined : asOfMicros(parseTime(options.asOf));
  const records = await store.listObjectVersions(objectId, untilUs === undefined ? {} : { untilUs });
  return Promise.all(records.map((r) => describeVersion(store, r)));
}
