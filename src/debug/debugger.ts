/**
 * The step debugger: an interactive session over a replay, execution by execution, read from a
 * terminal or from piped standard input (one command a line, so sessions can be scripted).
 *
 * Commands: `next [n]`, `continue`, `break step=<id> | offset=<n> | when=[!]<predicate module> |
 * diverged` (no argument: list), `delete [n]`, `inspect input|output|params|context|recorded|record`,
 * `diff`, `where`, `help`, `quit`. Short forms: n, c, b, d, i, w, h, q. On a terminal an empty
 * line repeats the last command.
 *
 * It is built on {@link replaySteps}: nothing is written to the store.
 */
import { createInterface } from 'node:readline';
import { ProvenantError, errorMessage } from '../errors.js';
import type { ExecutionContext } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { RecordSource } from '../sources/source.js';
import { replaySteps, type ReplayedStep, type ReplaySession, type StepSubstitution } from '../replay/range.js';
import { diffJson } from '../replay/json-patch.js';
import { loadPredicate, type OutputPredicate } from '../replay/predicate.js';
import { isThenable } from '../step/call.js';
import { painter, renderJson, renderPatch, type Painter } from './render.js';

/** Options of {@link runDebugger}. */
export interface DebuggerOptions {
  readonly store: Store;
  readonly streamId: string;
  /** First checkpoint (id or unique prefix). Default: the run's first. */
  readonly from?: string;
  /** Last checkpoint, inclusive. Default: the run's last ended one. */
  readonly to?: string;
  readonly runId?: string;
  readonly source?: RecordSource;
  readonly context?: ExecutionContext;
  /** Debug a what-if: other code or params for chosen steps (`diff` then shows what they change). */
  readonly substitutions?: Readonly<Record<string, StepSubstitution>>;
  /** Where commands come from (a terminal or a pipe). */
  readonly input: NodeJS.ReadableStream;
  /** Where the session writes. */
  readonly output: NodeJS.WritableStream;
  /** A terminal: show a prompt, edit lines, repeat the last command on an empty line. */
  readonly terminal: boolean;
  /** Colourise (the CLI turns it off for NO_COLOR and when the output is not a terminal). */
  readonly color: boolean;
  /** Loads `break when=` predicate modules (default: {@link loadPredicate}). */
  readonly loadPredicate?: (path: string) => Promise<OutputPredicate>;
}

/** How a debugging session ended. */
export interface DebuggerSummary {
  /** Executions the session stepped over. */
  readonly executions: number;
  readonly matched: number;
  readonly diverged: number;
  /** True when the replay reached the end of the range. */
  readonly ended: boolean;
}

type Breakpoint =
  | { readonly id: number; readonly kind: 'step'; readonly stepId: string }
  | { readonly id: number; readonly kind: 'offset'; readonly offset: number }
  | { readonly id: number; readonly kind: 'when'; readonly module: string; readonly negate: boolean; readonly predicate: OutputPredicate }
  | { readonly id: number; readonly kind: 'diverged' };

const HELP = `Commands (short forms in brackets):
  next [n]            [n]  run to the next execution (or the n-th next)
  continue            [c]  run until a breakpoint is hit or the range ends
  break step=<id>     [b]  stop at every execution of a step
  break offset=<n>         stop at the first execution of the record at stream offset n
  break when=<module>      stop where the module's default export (output, record, info) returns true
  break when=!<module>     … returns false (e.g. a bisect "good" predicate)
  break diverged           stop where the replay does not reproduce the recorded outcome
  break                    list breakpoints
  delete [n]          [d]  delete breakpoint n (or all)
  inspect <what>      [i]  input | output | params | context | recorded (output) | record (source record)
  diff                     RFC 6902 patch from the recorded output to the replayed one
  where               [w]  checkpoint, offset, step, version, recorded execution, verdict
  help                [h]  this text
  quit                [q]  end the session`;

/**
 * Run a debugging session until `quit`, the end of the input, or (with `continue`) the end of the range.
 * @throws ProvenantError NOT_FOUND / CHECKPOINT_INVALID for an unknown stream or checkpoint (before the session starts)
 */
export async function runDebugger(options: DebuggerOptions): Promise<DebuggerSummary> {
  const session = replaySteps(options.store, {
    streamId: options.streamId,
    ...(options.from === undefined ? {} : { from: options.from }),
    ...(options.to === undefined ? {} : { to: options.to }),
    ...(options.runId === undefined ? {} : { runId: options.runId }),
    ...(options.source === undefined ? {} : { source: options.source }),
    context: { source: 'debugger', ...(options.context ?? {}) },
    ...(options.substitutions === undefined ? {} : { substitutions: options.substitutions }),
  });
  const range = await session.open();
  const d = new Debugger(session, options);
  const first = range.checkpoints[0];
  const last = range.checkpoints[range.checkpoints.length - 1];
  const subs = Object.keys(options.substitutions ?? {});
  d.say(
    `${d.paint('bold', subs.length === 0 ? 'Debugging a replay' : `Debugging a what-if (${subs.join(', ')} substituted)`)} of run ${range.runId} over ${range.streamId}: ${range.checkpoints.length} checkpoint${range.checkpoints.length === 1 ? '' : 's'}, ` +
      `offsets ${count(first?.startOffset ?? 0)}..${count(last?.end?.endOffset ?? 0)} (${count(session.totalRecords)} records).\n` +
      `Paused before the first execution. Type ${d.paint('cyan', 'help')} for the commands.`,
  );
  return d.loop();
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

class Debugger {
  readonly paint: Painter;
  readonly #options: DebuggerOptions;
  readonly #session: ReplaySession;
  readonly #it: AsyncIterator<ReplayedStep>;
  readonly #breakpoints: Breakpoint[] = [];
  #nextBreakpoint = 1;
  #current: ReplayedStep | undefined;
  /** The source record of the current execution's record. */
  #record: unknown;
  #ended = false;
  #seen = 0;

  constructor(session: ReplaySession, options: DebuggerOptions) {
    this.#session = session;
    this.#options = options;
    this.paint = painter(options.color);
    this.#it = session[Symbol.asyncIterator]();
  }

  say(text: string): void {
    this.#options.output.write(`${text}\n`);
  }

  async loop(): Promise<DebuggerSummary> {
    const { input, output, terminal } = this.#options;
    const rl = createInterface({ input, ...(terminal ? { output } : {}), terminal, prompt: '(debug) ' });
    rl.on('SIGINT', () => rl.close());
    let last = '';
    let quit = false;
    if (terminal) rl.prompt();
    try {
      for await (const raw of rl) {
        let line = raw.trim();
        if (line === '' && terminal) line = last;
        if (!terminal && line !== '') this.say(`${this.paint('dim', '(debug)')} ${line}`);
        if (line !== '' && !line.startsWith('#')) {
          last = line;
          try {
            quit = await this.command(line);
          } catch (err) {
            this.say(`${this.paint('red', 'error')}: ${errorMessage(err)}`);
            if (err instanceof ProvenantError && err.hint !== undefined) this.say(`${this.paint('yellow', 'hint')}: ${err.hint}`);
          }
        }
        if (quit) break;
        if (terminal) rl.prompt();
      }
    } finally {
      rl.close();
      await this.#it.return?.();
    }
    const s = this.#session.stats;
    return { executions: this.#seen, matched: s.matched, diverged: s.diverged, ended: this.#ended };
  }

  /** Run one command; true to end the session. */
  async command(line: string): Promise<boolean> {
    const [word = '', ...args] = line.split(/\s+/);
    switch (word.toLowerCase()) {
      case 'n':
      case 'next': {
        const times = args[0] === undefined ? 1 : Number(args[0]);
        if (!Number.isInteger(times) || times <= 0) throw new ProvenantError('INPUT_INVALID', `next takes a positive count, not "${args[0] ?? ''}"`);
        for (let i = 0; i < times && !this.#ended; i++) await this.#advance();
        this.#show();
        return false;
      }
      case 'c':
      case 'cont':
      case 'continue': {
        for (;;) {
          await this.#advance();
          if (this.#ended) break;
          const hit = await this.#hit();
          if (hit !== undefined) {
            this.say(`${this.paint('bold', `Breakpoint ${hit.id}`)} (${describeBreakpoint(hit)})`);
            break;
          }
        }
        this.#show();
        return false;
      }
      case 'b':
      case 'break':
        await this.#break(args.join(' '));
        return false;
      case 'd':
      case 'delete': {
        if (args[0] === undefined) {
          this.#breakpoints.splice(0);
          this.say('Deleted all breakpoints.');
        } else {
          const i = this.#breakpoints.findIndex((b) => String(b.id) === args[0]);
          if (i < 0) throw new ProvenantError('INPUT_INVALID', `no breakpoint ${args[0]}`, { hint: '`break` lists them.' });
          this.#breakpoints.splice(i, 1);
          this.say(`Deleted breakpoint ${args[0]}.`);
        }
        return false;
      }
      case 'i':
      case 'p':
      case 'print':
      case 'inspect':
        await this.#inspect(args[0] ?? 'output');
        return false;
      case 'diff':
        await this.#diff();
        return false;
      case 'w':
      case 'where':
        this.#where();
        return false;
      case 'h':
      case '?':
      case 'help':
        this.say(HELP);
        return false;
      case 'q':
      case 'quit':
      case 'exit':
        return true;
      default:
        throw new ProvenantError('INPUT_INVALID', `unknown command "${word}"`, { hint: 'Type help for the commands.' });
    }
  }

  async #advance(): Promise<void> {
    if (this.#ended) return;
    const r = await this.#it.next();
    if (r.done === true) {
      this.#ended = true;
      return;
    }
    const ev = r.value;
    if (ev.position === 0) this.#record = ev.inputValue;
    this.#current = ev;
    this.#seen++;
  }

  async #hit(): Promise<Breakpoint | undefined> {
    const ev = this.#current;
    if (ev === undefined) return undefined;
    for (const b of this.#breakpoints) {
      switch (b.kind) {
        case 'step':
          if (ev.stepId === b.stepId) return b;
          break;
        case 'offset':
          if (ev.offset === b.offset && ev.position === 0) return b;
          break;
        case 'diverged':
          if (ev.verdict === 'diverged') return b;
          break;
        case 'when': {
          let r: unknown;
          try {
            r = b.predicate(ev.ran && ev.error === undefined ? ev.outputValue : undefined, this.#record, {
              offset: ev.offset,
              stepId: ev.stepId,
              versionHash: ev.versionHash,
              checkpointId: ev.checkpoint.checkpointId,
              final: ev.last,
              ...(ev.error === undefined ? {} : { error: ev.error }),
            });
            if (isThenable(r)) r = await r;
          } catch {
            r = false; // a predicate that cannot judge this output does not stop here
          }
          if (Boolean(r) !== b.negate) return b;
          break;
        }
      }
    }
    return undefined;
  }

  async #break(spec: string): Promise<void> {
    if (spec === '') {
      if (this.#breakpoints.length === 0) this.say('No breakpoints.');
      for (const b of this.#breakpoints) this.say(`  ${b.id}  ${describeBreakpoint(b)}`);
      return;
    }
    const id = this.#nextBreakpoint;
    let b: Breakpoint;
    const m = /^(step|offset|when)=(.+)$/.exec(spec);
    if (spec === 'diverged') b = { id, kind: 'diverged' };
    else if (m?.[1] === 'step') b = { id, kind: 'step', stepId: m[2] as string };
    else if (m?.[1] === 'offset') {
      const offset = Number((m[2] as string).replace(/,/g, ''));
      if (!Number.isInteger(offset) || offset < 0) throw new ProvenantError('INPUT_INVALID', `break offset= takes a stream offset (a whole number), not "${m[2] ?? ''}"`);
      b = { id, kind: 'offset', offset };
    } else if (m?.[1] === 'when') {
      const negate = (m[2] as string).startsWith('!');
      const module = negate ? (m[2] as string).slice(1) : (m[2] as string);
      const predicate = await (this.#options.loadPredicate ?? loadPredicate)(module);
      b = { id, kind: 'when', module, negate, predicate };
    } else {
      throw new ProvenantError('INPUT_INVALID', `cannot read breakpoint "${spec}"`, { hint: 'Write break step=<id>, break offset=<n>, break when=<predicate module> or break diverged.' });
    }
    this.#nextBreakpoint++;
    this.#breakpoints.push(b);
    this.say(`Breakpoint ${id}: ${describeBreakpoint(b)}`);
  }

  /** The current execution, on one line; or why there is none. */
  #show(): void {
    const ev = this.#current;
    if (this.#ended) {
      const s = this.#session.stats;
      this.say(
        `${this.paint('bold', 'End of the range')}: ${count(s.records)} records, ${count(s.executions)} executions: ` +
          `${count(s.matched)} matched, ${s.diverged === 0 ? '0' : this.paint('red', count(s.diverged))} diverged.`,
      );
      return;
    }
    if (ev === undefined) {
      this.say('Not started: `next` runs to the first execution.');
      return;
    }
    this.say(
      `${this.paint('bold', '→')} offset ${count(ev.offset)} · step ${this.paint('cyan', ev.stepId)} (#${ev.position + 1}) @ ${ev.versionHash.slice(0, 19)} · ${this.#verdict(ev)}`,
    );
  }

  #verdict(ev: ReplayedStep): string {
    if (ev.verdict === 'match') return this.paint('green', 'match');
    return `${this.paint('red', 'diverged')} (${ev.cause ?? '?'})${ev.detail === null ? '' : `: ${ev.detail}`}`;
  }

  #need(): ReplayedStep {
    if (this.#current === undefined) {
      throw new ProvenantError('INPUT_INVALID', this.#ended ? 'the replay has ended' : 'no execution yet', { hint: '`next` runs to the first execution.' });
    }
    return this.#current;
  }

  #where(): void {
    const ev = this.#need();
    const cp = ev.checkpoint;
    const range = this.#session.range;
    const index = range === undefined ? -1 : range.checkpoints.findIndex((c) => c.checkpointId === cp.checkpointId);
    const rec = ev.recorded;
    this.say(
      [
        `  checkpoint  ${cp.checkpointId} (${index + 1} of ${range?.checkpoints.length ?? '?'}; offsets ${count(cp.startOffset)}..${count(cp.end?.endOffset ?? cp.startOffset)})`,
        `  offset      ${count(ev.offset)}`,
        `  step        ${ev.stepId} (#${ev.position + 1} of the record's path)`,
        `  version     ${ev.versionHash}`,
        `  recorded    ${rec === null ? '(none)' : `execution ${rec.id}: ${rec.status === 'ok' ? `output ${rec.outputHash ?? '-'}` : 'failed'}`}`,
        `  replayed    ${ev.ran ? (ev.error === undefined ? `output ${ev.output?.hash ?? '-'}` : `failed: ${ev.error}`) : 'did not run'}`,
        `  verdict     ${this.#verdict(ev)}`,
        `  executions  ${count(this.#seen)} so far`,
      ].join('\n'),
    );
  }

  async #inspect(what: string): Promise<void> {
    const ev = this.#need();
    const render = (v: unknown): string => renderJson(v, { color: this.#options.color });
    switch (what) {
      case 'input':
        this.say(`${this.paint('bold', 'input')} ${ev.input?.encoded.hash ?? ''}\n${render(ev.inputValue)}`);
        return;
      case 'output':
        if (!ev.ran) this.say(`${this.paint('bold', 'output')}: the step did not run (${ev.detail ?? ''})`);
        else if (ev.error !== undefined) this.say(`${this.paint('bold', 'output')}: ${this.paint('red', 'failed')}: ${ev.error}`);
        else this.say(`${this.paint('bold', 'output')} ${ev.output?.hash ?? ''}\n${render(ev.outputValue)}`);
        return;
      case 'recorded': {
        const rec = ev.recorded;
        if (rec === null) this.say(`${this.paint('bold', 'recorded')}: no execution was recorded here`);
        else if (rec.status === 'failed') this.say(`${this.paint('bold', 'recorded')}: ${this.paint('red', 'failed')}: ${(await ev.recordedError()) ?? '?'}`);
        else this.say(`${this.paint('bold', 'recorded output')} ${rec.outputHash ?? ''}\n${render(await ev.recordedOutput())}`);
        return;
      }
      case 'params':
        this.say(`${this.paint('bold', 'params')} ${ev.paramsHash ?? ''}\n${render(ev.params)}`);
        return;
      case 'context':
        this.say(`${this.paint('bold', 'context')}\n${render(ev.context)}`);
        return;
      case 'record':
        this.say(`${this.paint('bold', 'source record')} at offset ${count(ev.offset)}\n${render(this.#record)}`);
        return;
      default:
        throw new ProvenantError('INPUT_INVALID', `cannot inspect "${what}"`, { hint: 'inspect input | output | params | context | recorded | record' });
    }
  }

  async #diff(): Promise<void> {
    const ev = this.#need();
    const rec = ev.recorded;
    if (rec === null) {
      this.say('No execution was recorded here: nothing to compare with.');
      return;
    }
    if (rec.status === 'failed' || !ev.ran || ev.error !== undefined) {
      const recorded = rec.status === 'failed' ? `failed: ${(await ev.recordedError()) ?? '?'}` : `output ${rec.outputHash ?? '-'}`;
      const replayed = !ev.ran ? `did not run (${ev.detail ?? ''})` : ev.error !== undefined ? `failed: ${ev.error}` : `output ${ev.output?.hash ?? '-'}`;
      this.say(`  recorded  ${recorded}\n  replayed  ${replayed}`);
      return;
    }
    if (rec.outputHash === ev.output?.hash) {
      this.say(`No difference: the replayed output is the recorded one (${rec.outputHash}).`);
      return;
    }
    const before = await ev.recordedOutput();
    const ops = diffJson(before, ev.outputValue);
    this.say(`${this.paint('bold', 'diff')} recorded ${rec.outputHash ?? '-'} → replayed ${ev.output?.hash ?? '-'} (${ops.length} operation${ops.length === 1 ? '' : 's'}, RFC 6902)`);
    this.say(renderPatch(ops, before, { color: this.#options.color }));
  }
}

function describeBreakpoint(b: Breakpoint): string {
  switch (b.kind) {
    case 'step':
      return `step=${b.stepId}`;
    case 'offset':
      return `offset=${b.offset}`;
    case 'when':
      return `when=${b.negate ? '!' : ''}${b.module}`;
    case 'diverged':
      return 'diverged';
  }
}
