/**
 * Execution ids: UUIDv7 text, time-ordered, written by our own hex encoder (one flat string) from
 * the bytes the uuidv7 library generates.
 */
import { UUID } from 'uuidv7';
import { describe, expect, it } from 'vitest';
import { isUuid, newId, newIdWithBytes, uuidFromBytes, uuidToBytes } from '../src/ids.js';

describe('ids', () => {
  it('are canonical UUIDv7 text, the same as the library writes for the same bytes', () => {
    for (let i = 0; i < 2000; i++) {
      const { id, bytes } = newIdWithBytes();
      expect(id).toBe(UUID.ofInner(bytes).toString());
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(isUuid(id)).toBe(true);
      expect(uuidFromBytes(uuidToBytes(id))).toBe(id);
    }
  });

  it('increase strictly in generation order, as text', () => {
    const ids = Array.from({ length: 20_000 }, () => newId());
    for (let i = 1; i < ids.length; i++) expect((ids[i - 1] as string) < (ids[i] as string)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
