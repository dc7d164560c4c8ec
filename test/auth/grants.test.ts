/** The grant grammar `<right>:<pattern>` and pattern matching, against a regular-expression reference. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Grants, parseGrant, patternCovers } from '../../src/auth/grants.js';

/** The reference: `*` is `.*`, everything else literal, anchored. */
const reference = (pattern: string, id: string): boolean =>
  new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\s\\S]*')}$`).test(id);

describe('grants', () => {
  it('parses each right and refuses unknown rights and empty patterns, naming the grant', () => {
    expect(parseGrant('read:customers/*')).toMatchObject({ right: 'read', pattern: 'customers/*' });
    expect(parseGrant('replay:orders')).toMatchObject({ right: 'replay', pattern: 'orders' });
    expect(parseGrant('stream:file:/data/x.json').pattern).toBe('file:/data/x.json');
    for (const bad of ['write:x', 'read', 'read:', 'customers/*', ':x', 'read:a\nb']) {
      expect(() => parseGrant(bad), bad).toThrow(/grant/);
    }
  });

  it('covers ids as the examples in the docs say', () => {
    expect(patternCovers('customers/*', 'customers/42')).toBe(true);
    expect(patternCovers('customers/*', 'customers/eu/42')).toBe(true);
    expect(patternCovers('customers/*', 'customers')).toBe(false);
    expect(patternCovers('customers/*', 'customersX/1')).toBe(false);
    expect(patternCovers('*', 'anything/at/all')).toBe(true);
    expect(patternCovers('orders', 'orders')).toBe(true);
    expect(patternCovers('orders', 'orders/eu')).toBe(false);
    expect(patternCovers('a*b*a', 'aba')).toBe(true);
    expect(patternCovers('a*b*a', 'ab')).toBe(false);
  });

  it('matches exactly like the regular-expression reference (property)', () => {
    const alphabet = fc.constantFrom('a', 'b', '/', '*', '.', '?', '(');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 8 }).map((a) => a.join('')), fc.array(fc.constantFrom('a', 'b', '/', '.', '?', '('), { maxLength: 10 }).map((a) => a.join('')), (pattern, id) => {
        expect(patternCovers(pattern, id)).toBe(reference(pattern, id));
      }),
      { numRuns: 5000 },
    );
  });

  it('never lets one right stand for another', () => {
    const g = Grants.parse(['read:customers/*', 'replay:orders']);
    expect(g.allows('read', 'customers/1')).toBe(true);
    expect(g.allows('lineage', 'customers/1')).toBe(false);
    expect(g.allows('replay', 'orders')).toBe(true);
    expect(g.allows('stream', 'orders')).toBe(false);
    expect(g.covering('read', 'customers/1')?.text).toBe('read:customers/*');
    expect(g.allowsAll('read')).toBe(false);
    expect(Grants.parse(['read:*']).allowsAll('read')).toBe(true);
  });
});
