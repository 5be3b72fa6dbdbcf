// What handleOpen is given beyond the request's raw parts (its fifth argument: the query and the
// cookies, parsed on first use) and what its result means: accept, 403, or a refusal of its own.
import { inspect } from 'node:util';
import type { OpenRefusal, OpenRequest } from './types.cjs';

/** handleOpen's fifth argument; each part is parsed when first read. */
export class ParsedRequest implements OpenRequest {
  private parsedQuery: URLSearchParams | undefined;
  private parsedCookies: Record<string, string> | undefined;

  constructor(
    private readonly url: string,
    private readonly cookieHeader: string | undefined,
  ) {}

  get query(): URLSearchParams {
    this.parsedQuery ??= new URLSearchParams(queryOf(this.url));
    return this.parsedQuery;
  }

  get cookies(): Record<string, string> {
    this.parsedCookies ??= parseCookies(this.cookieHeader);
    return this.parsedCookies;
  }
}

/** The query of a request target: after its first `?`, up to a `#` (as a URL's search). */
function queryOf(url: string): string {
  const start = url.indexOf('?');
  if (start < 0) return '';
  const end = url.indexOf('#', start);
  return url.slice(start + 1, end < 0 ? undefined : end);
}

/** The cookies of a Cookie header by name (see OpenRequest.cookies); never throws. */
function parseCookies(header: string | undefined): Record<string, string> {
  const cookies: Record<string, string> = Object.create(null);
  if (header === undefined) return cookies;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const name = pair.slice(0, eq).trim();
    if (name === '' || name in cookies) continue;
    let value = pair.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    cookies[name] = percentDecoded(value);
  }
  return cookies;
}

function percentDecoded(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value; // not valid percent-encoding: the value as sent
  }
}

/** What a handleOpen result asks for: accept, refuse with 403, or a refusal of its own. */
export type OpenVerdict = { accept: boolean } | { refusal: string; body: string | ArrayBuffer | ArrayBufferView };

/** The refusal a handleOpen with an invalid one is answered with (the addon's JSON form). */
export const SERVER_ERROR: OpenVerdict = { refusal: JSON.stringify({ status: 500, headers: [] }), body: '' };

/**
 * The verdict a handleOpen result gives: an object with a `status` property (not undefined) is a
 * refusal, `false` refuses with 403, anything else accepts.
 * @throws {TypeError} when a refusal's status is not an integer, its headers not an object of
 * strings, numbers, arrays of strings or undefined, or its body not a string or bytes; its HTTP rules (the
 * status's range, header names and values, the size) are the addon's to check.
 */
export function verdictOf(result: unknown): OpenVerdict {
  if (typeof result !== 'object' || result === null || (result as { status?: unknown }).status === undefined) {
    return { accept: result !== false };
  }
  const { status, headers = {}, body = '' } = result as OpenRefusal;
  if (!Number.isInteger(status)) throw new TypeError(`status ${inspect(status)} is not an integer from 400 to 599`);
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw new TypeError('headers must be an object of header names to values');
  }
  const lines: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (typeof value === 'string' || typeof value === 'number') lines.push([name, String(value)]);
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) for (const v of value) lines.push([name, v]);
    else throw new TypeError(`header ${JSON.stringify(name)} must be a string, a number or an array of strings`);
  }
  if (typeof body !== 'string' && !ArrayBuffer.isView(body) && !(body instanceof ArrayBuffer)) {
    throw new TypeError('body must be a string, an ArrayBuffer or an ArrayBufferView');
  }
  return { refusal: JSON.stringify({ status, headers: lines }), body };
}
