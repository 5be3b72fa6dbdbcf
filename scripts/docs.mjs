// Regenerates the API reference of README.md from the JSDoc of what js/index.cts exports (the
// declarations its re-exports name, in its order), using the TypeScript compiler API. The section between `<!-- api:start -->` and `<!-- api:end -->` is replaced.
//   node scripts/docs.mjs           rewrite README.md
//   node scripts/docs.mjs --check   exit 1 if README.md is not up to date (changes nothing)
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const entry = path.join(root, 'js', 'index.cts');
const readmePath = path.join(root, 'README.md');
const START = '<!-- api:start -->';
const END = '<!-- api:end -->';

function compilerOptions() {
  const configPath = path.join(root, 'tsconfig.json');
  const { config, error } = ts.readConfigFile(configPath, ts.sys.readFile);
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, '\n'));
  return ts.parseJsonConfigFileContent(config, ts.sys, root).options;
}

/** The text of a JSDoc comment (string or node list), trimmed. */
function text(comment) {
  return (ts.getTextOfJSDocComment(comment) ?? '').trim();
}

/** The first JSDoc block attached to a node. */
function jsDocOf(node) {
  return ts.getJSDocCommentsAndTags(node).find((d) => ts.isJSDoc(d));
}

/** Indents every line after the first, so that a multi-line text stays inside a list item. */
function indentRest(s, indent = '  ') {
  return s.replace(/\n(?=.)/g, `\n${indent}`);
}

function oneLine(s) {
  return s.replace(/\s+/g, ' ').trim();
}

/** A function's signature as written (the checker would spell `x?: T` as `x?: T | undefined`). */
function signatureOf(node) {
  const typeParameters = node.typeParameters ? `<${node.typeParameters.map((p) => p.getText()).join(', ')}>` : '';
  return oneLine(`${typeParameters}(${node.parameters.map((p) => p.getText()).join(', ')}) => ${node.type ? node.type.getText() : 'void'}`);
}

/** A function, from its first declaration's JSDoc; an overloaded one shows each overload's signature. */
function renderFunction(node, overloads) {
  const name = node.name.text;
  const doc = jsDocOf(node);
  const out = [`### ${name} · function`, ''];
  if (doc?.comment) out.push(text(doc.comment), '');
  if (overloads.length > 1) {
    out.push('**Signatures:**', '', ...overloads.map((o) => `- \`${signatureOf(o)}\``), '');
  } else {
    out.push(`**Signature:** \`${signatureOf(node)}\``, '');
  }

  const tags = doc?.tags ?? [];
  const params = tags.filter(ts.isJSDocParameterTag);
  if (params.length > 0) {
    out.push('**Parameters:**', '');
    for (const p of params) {
      const comment = text(p.comment).replace(/^-\s*/, '');
      out.push(`- \`${p.name.getText()}\` - ${indentRest(comment)}`);
    }
    out.push('');
  }
  const returns = tags.find(ts.isJSDocReturnTag);
  if (returns) out.push(`**Returns:** ${text(returns.comment)}`, '');
  const throws = tags.filter((t) => ts.isJSDocThrowsTag(t));
  if (throws.length > 0) {
    out.push('**Throws:**', '');
    for (const t of throws) {
      const type = t.typeExpression ? `\`${t.typeExpression.type.getText()}\` ` : '';
      out.push(`- ${type}${indentRest(text(t.comment))}`);
    }
    out.push('');
  }
  return out;
}

function renderInterface(node) {
  const name = node.name.text;
  const doc = jsDocOf(node);
  const out = [`### ${name} · interface`, ''];
  if (doc?.comment) out.push(text(doc.comment), '');
  const lower = name[0].toLowerCase() + name.slice(1);
  for (const member of node.members) {
    // A member named by a symbol (a brand) is no part of what users write or read.
    if (!member.name || ts.isComputedPropertyName(member.name)) continue;
    const memberName = member.name.getText();
    out.push(`#### ${lower}.${memberName} · member`, '');
    const memberDoc = jsDocOf(member);
    if (memberDoc?.comment) out.push(text(memberDoc.comment), '');
    if (member.type) out.push(`**Type:** \`${oneLine(member.type.getText())}\``, '');
  }
  return out;
}

/**
 * The declarations that `source` exports, in its order: its own exported statements, and the
 * declaration behind each name of an `export { … } from` statement, each with its overload
 * signatures (a function's declarations without body).
 */
function exportedDeclarations(source, checker) {
  const out = [];
  for (const statement of source.statements) {
    if (ts.isExportDeclaration(statement) && statement.exportClause && ts.isNamedExports(statement.exportClause)) {
      for (const element of statement.exportClause.elements) {
        const symbol = checker.getSymbolAtLocation(element.name);
        const target = symbol && symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
        const declaration = target?.declarations?.[0];
        if (!declaration) throw new Error(`js/index.cts: cannot find the declaration of ${element.name.text}`);
        out.push({ declaration, overloads: target.declarations.filter((d) => ts.isFunctionDeclaration(d) && !d.body) });
      }
    } else if (ts.getCombinedModifierFlags(statement) & ts.ModifierFlags.Export) {
      out.push({ declaration: statement, overloads: [] });
    }
  }
  return out;
}

export function generate() {
  const program = ts.createProgram([entry], compilerOptions());
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (diagnostics.length > 0) {
    throw new Error(ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' }));
  }
  const source = program.getSourceFile(entry);
  const lines = [`The reference below is generated from the JSDoc of what \`js/index.cts\` re-exports, by \`npm run docs\`.`, ''];
  for (const { declaration, overloads } of exportedDeclarations(source, program.getTypeChecker())) {
    if (ts.isFunctionDeclaration(declaration) && declaration.name) lines.push(...renderFunction(declaration, overloads));
    else if (ts.isInterfaceDeclaration(declaration)) lines.push(...renderInterface(declaration));
  }
  while (lines.at(-1) === '') lines.pop();
  return lines.join('\n');
}

function main() {
  const check = process.argv.includes('--check');
  const readme = readFileSync(readmePath, 'utf8');
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md needs the markers ${START} and ${END}, in that order`);
  const updated = `${readme.slice(0, start + START.length)}\n\n${generate()}\n\n${readme.slice(end)}`;
  if (check) {
    if (updated !== readme) {
      console.error('README.md: the API reference is out of date; run `npm run docs`');
      process.exit(1);
    }
    console.log('README.md: the API reference is up to date');
    return;
  }
  if (updated !== readme) writeFileSync(readmePath, updated);
  console.log(updated !== readme ? 'README.md: API reference updated' : 'README.md: API reference already up to date');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
