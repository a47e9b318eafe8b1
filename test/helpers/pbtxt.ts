/**
 * A reader of protobuf text format (the .pbtxt of Triton's model configs), just enough for tests: fields with scalar,
 * list and message values; repeated fields collect into arrays. Checked against a protobufjs Type by `checkMessage`.
 */
import { Enum, Type } from 'protobufjs';

type Value = string | number | boolean | PbObject | Value[];
export interface PbObject {
  [field: string]: Value;
}

function tokens(text: string): string[] {
  const re = /\s*(?:#[^\n]*\n)*\s*("(?:[^"\\]|\\.)*"|[{}[\]:,]|[^\s{}[\]:,"]+)/gy;
  const out: string[] = [];
  let at = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    out.push(m[1]);
    at = re.lastIndex;
  }
  if (text.slice(at).trim()) throw new Error(`pbtxt: cannot read "${text.slice(at, at + 20)}"`);
  return out;
}

export function parsePbtxt(text: string): PbObject {
  const t = tokens(text);
  let i = 0;
  const next = () => t[i++];
  const value = (): Value => {
    const tok = next();
    if (tok === '{') return message('}');
    if (tok === '[') {
      const list: Value[] = [];
      while (t[i] !== ']') {
        list.push(value());
        if (t[i] === ',') i++;
      }
      i++;
      return list;
    }
    if (tok.startsWith('"')) return JSON.parse(tok);
    if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(tok)) return Number(tok);
    return tok === 'true' ? true : tok === 'false' ? false : tok;
  };
  const message = (end: string | undefined): PbObject => {
    const obj: PbObject = {};
    while (i < t.length && t[i] !== end) {
      const key = next();
      if (t[i] === ':') i++;
      const v = value();
      const add = Array.isArray(v) ? v : [v];
      obj[key] = key in obj ? [...(Array.isArray(obj[key]) ? obj[key] : [obj[key]]), ...add] : v;
    }
    i++;
    return obj;
  };
  return message(undefined);
}

/** Every field of `obj` exists in `type`, with a value of its kind (enums by a name the enum has); recursively. */
export function checkMessage(type: Type, obj: PbObject, path = type.name): void {
  for (const [key, raw] of Object.entries(obj)) {
    const field = type.fields[key];
    if (!field) throw new Error(`${path}: no field "${key}" in ${type.name}`);
    field.resolve();
    const values = Array.isArray(raw) ? raw : [raw];
    if (Array.isArray(raw) && !field.repeated)
      throw new Error(`${path}.${key}: a list for a field that is not repeated`);
    for (const v of values) {
      const where = `${path}.${key}`;
      if (field.resolvedType instanceof Type) checkMessage(field.resolvedType, v as PbObject, where);
      else if (field.resolvedType instanceof Enum) {
        if (!((v as string) in field.resolvedType.values))
          throw new Error(`${where}: ${v as string} is not a ${field.resolvedType.name}`);
      } else if (
        field.type === 'string'
          ? typeof v !== 'string'
          : field.type === 'bool'
            ? typeof v !== 'boolean'
            : typeof v !== 'number'
      ) {
        throw new Error(`${where}: ${JSON.stringify(v)} is not a ${field.type}`);
      }
    }
  }
}
