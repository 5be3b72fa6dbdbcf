// The JSON of a token that setToken is given as a plain object or an array: checked so that what a
// defineWorker handler decodes is equal to what was given, never something JSON changed on the way.
import { describe } from './options.cjs';

/** What `setToken` refuses at the type level in a JSON token; the rest is checked when it is called. */
type NotJson =
  | ((...args: never[]) => unknown)
  | Date
  | RegExp
  | Map<unknown, unknown>
  | Set<unknown>
  | WeakMap<object, unknown>
  | WeakSet<object>
  | Promise<unknown>;

/** A token `setToken` stores as JSON: a plain object or an array (`never` for what JSON would change). */
export type JsonToken<T> = T extends NotJson ? never : T;

/** Whether `value` is an array, or an object whose prototype is `Object.prototype` or null. */
function isPlainContainer(value: unknown): value is object {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return true;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Why JSON would not give `value` back as it is (as a property of an array when `inArray`), or undefined. */
function changedByJson(value: unknown, inArray: boolean): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `the number ${value}, which JSON turns into null`;
    case 'undefined':
      return inArray ? 'undefined, which JSON turns into null in an array' : undefined;
    case 'bigint':
      return 'a BigInt, which JSON cannot store';
    case 'function':
    case 'symbol':
      return `${describe(value)}, which JSON leaves out`;
    default:
      if (value === null) return undefined;
      if (!isPlainContainer(value)) return `${describe(value)}, which JSON does not store as it is (a Date becomes a string, a Map or a class instance a plain object): store plain data`;
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return 'an object with a toJSON method, whose result JSON would store instead';
      return undefined;
  }
}

/**
 * The JSON of a token given as a plain object or an array. A property whose value is `undefined`
 * is left out, as JSON does (it reads back as `undefined`); anything else that JSON would change or
 * lose anywhere in it is a TypeError naming where: a function, a symbol, a BigInt, a number that is
 * not finite, `undefined` in an array, an object that is not plain (a Date, a Map, a Buffer, a class
 * instance), an object with a `toJSON` method, a cycle.
 */
export function jsonToken(token: unknown): string {
  if (token === null || typeof token !== 'object') {
    throw new TypeError(
      `setToken: token must be a string, an ArrayBuffer, a SharedArrayBuffer, an ArrayBufferView (Buffer, typed array, DataView), a plain object or an array, got ${describe(token)}`,
    );
  }
  let refusal: string | undefined;
  try {
    return JSON.stringify(token, function check(this: unknown, key: string, value: unknown) {
      // `this[key]` is the value before any toJSON, which JSON.stringify hands the replacer after.
      const problem = changedByJson((this as Record<string, unknown>)[key], Array.isArray(this));
      if (problem !== undefined) {
        refusal = `setToken: token${pathTo(token, this, key) ?? ''} is ${problem}`;
        throw new TypeError(refusal);
      }
      return value;
    });
  } catch (err) {
    if (refusal !== undefined) throw err; // check's own
    // A cycle (TypeError), or nesting deeper than the stack (RangeError).
    throw new TypeError(`setToken: token cannot be stored as JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** Where `holder[key]` is inside `root`, as `.a[2].b`; undefined when `holder` is not found in it. */
function pathTo(root: unknown, holder: unknown, key: string): string | undefined {
  const step = (container: unknown, k: string): string => (Array.isArray(container) ? `[${k}]` : /^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`);
  if (key === '') return '';
  const seen = new Set<unknown>();
  const search = (node: unknown, path: string): string | undefined => {
    if (node === holder) return path + step(node, key);
    if (!isPlainContainer(node) || seen.has(node)) return undefined;
    seen.add(node);
    for (const [k, child] of Object.entries(node)) {
      const found = search(child, path + step(node, k));
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return search(root, '');
}
