import { describe, expect, it } from 'vitest';
import { nextPage } from './api';

describe('nextPage', () => {
  it('follows rel="next" on this origin only', () => {
    expect(nextPage('</api/v1/machines?limit=1000&after=abc>; rel="next"', 'http://k')).toBe('/api/v1/machines?limit=1000&after=abc');
    expect(nextPage('<http://k/api/v1/stacks?after=x>; rel="next", </api/v1/stacks>; rel="first"', 'http://k')).toBe('/api/v1/stacks?after=x');
    expect(nextPage('<http://evil/api?x>; rel="next"', 'http://k')).toBeNull();
    expect(nextPage('</a>; rel="prev"', 'http://k')).toBeNull();
    expect(nextPage(null, 'http://k')).toBeNull();
  });
});
