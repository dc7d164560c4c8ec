/**
 * Export formats: a small registry. Each format turns a {@link ExportScope} of the store's history
 * into text, written in pieces through `write`. `provenant export --format <name>` looks formats
 * up here; a new format (e.g. Cypher) is one file that calls {@link registerExportFormat}, and a
 * new scope (e.g. an object's versions) is a field of {@link ExportScope} that
 * {@link selectExecutions} (or the format) honours.
 */
import { ProvenantError } from '../errors.js';
import type { ExecutionRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import { validateObjectId } from '../objects/refs.js';

/** What to export. All fields optional: the whole store by default. */
export interface ExportScope {
  /** Only executions of this stream… */
  readonly streamId?: string;
  /** …with offsets from `from` (inclusive)… */
  readonly from?: number;
  /** …to `to` (exclusive). */
  readonly to?: number;
  /** Only this run's executions. */
  readonly runId?: string;
  /** History as it stood at this time (epoch microseconds): executions ended by then. */
  readonly asOfUs?: number;
  /** Only the lineage of this object: the executions that made its versions, their ancestors and descendants. */
  readonly objectId?: string;
}

/** One export format. */
export interface ExportFormat {
  /** The `--format` name. */
  readonly name: string;
  readonly description: string;
  /** File extension for `--out` suggestions, without the dot. */
  readonly extension: string;
  /** Write the export of `scope` through `write`, in order. */
  export(store: Store, scope: ExportScope, write: (text: string) => Promise<void> | void): Promise<void>;
}

const formats = new Map<string, ExportFormat>();

/** Register a format under its name (replacing one of the same name). */
export function registerExportFormat(format: ExportFormat): void {
  formats.set(format.name, format);
}

/** Every registered format, by name. */
export function exportFormats(): ExportFormat[] {
  return [...formats.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The format called `name`.
 * @throws ProvenantError INPUT_INVALID naming the formats there are
 */
export function exportFormat(name: string): ExportFormat {
  const f = formats.get(name);
  if (f === undefined) {
    throw new ProvenantError('INPUT_INVALID', `unknown export format "${name}"`, {
      hint: `Formats: ${exportFormats().map((x) => x.name).join(', ')}.`,
      context: { format: name },
    });
  }
  return f;
}

/** The executions in a scope, in id (time) order. */
export async function* selectExecutions(store: Store, scope: ExportScope): AsyncGenerator<ExecutionRecord> {
  if (scope.objectId !== undefined) {
    yield* objectExecutions(store, { ...scope, objectId: scope.objectId });
    return;
  }
  let afterId: string | undefined;
  for (;;) {
    const page = await store.listExecutions({ ...(scope.runId === undefined ? {} : { runId: scope.runId }), ...(afterId === undefined ? {} : { afterId }), limit: 1000 });
    for (const e of page) {
      if (scope.streamId !== undefined && e.streamId !== scope.streamId) continue;
      if (scope.from !== undefined && (e.offset === null || e.offset < scope.from)) continue;
      if (scope.to !== undefined && (e.offset === null || e.offset >= scope.to)) continue;
      if (scope.asOfUs !== undefined && e.endedUs > scope.asOfUs) continue;
      yield e;
    }
    if (page.length < 1000) return;
    afterId = page[page.length - 1]?.id;
  }
}

/** The executions in an object's lineage (the DAG walked both ways from its versions), in id order. */
async function* objectExecutions(store: Store, scope: ExportScope & { objectId: string }): AsyncGenerator<ExecutionRecord> {
  validateObjectId(scope.objectId);
  const until = scope.asOfUs === undefined ? {} : { untilUs: scope.asOfUs };
  const own = await store.listObjectVersions(scope.objectId, until);
  if (own.length === 0) {
    throw new ProvenantError('NOT_FOUND', `no object ${scope.objectId}${scope.asOfUs === undefined ? '' : ' at that time'} in ${store.location}`, {
      hint: 'List objects with `provenant objects`.',
      context: { objectId: scope.objectId },
    });
  }
  const ids = new Set<string>();
  for (const direction of ['up', 'down'] as const) {
    const rows = await store.walkLineage({ from: own.map((v) => v.versionId), direction, ...until, limit: 1_000_000 });
    for (const r of rows.versions) if (r.version.executionId !== null) ids.add(r.version.executionId);
  }
  for (const id of [...ids].sort()) {
    const e = await store.getExecution(id);
    if (e !== undefined && (scope.asOfUs === undefined || e.endedUs <= scope.asOfUs)) yield e;
  }
}
