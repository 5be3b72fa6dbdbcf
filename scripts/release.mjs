// Releases: wsbroker and its platform packages are published together, at one version.
//   node scripts/release.mjs release [patch|minor|major]
//       npm run release: starts the release workflow on GitHub (.github/workflows/release.yml),
//       which builds every platform package, publishes them and wsbroker, and tags the commit.
//   node scripts/release.mjs dryrun
//       npm run dryrun: the whole release here, but `npm publish --dry-run`: the release build of
//       this machine's platform package, the cross builds of the others, then every publish.
//   node scripts/release.mjs version <patch|minor|major|x.y.z>
//       the workflow: the next version, written into package.json (and its optionalDependencies),
//       package-lock.json and every npm/<platform>/package.json.
//   node scripts/release.mjs publish [npm publish flags: --dry-run, --provenance…]
//       the workflow: checks that every platform package holds its binaries at wsbroker's version,
//       then publishes them, then wsbroker.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { checkPackage, packageDir, platforms, readJson, root, run } from './platforms.mjs';

// npm itself: the one running this script when there is one; npmCommand gives its command line.
const npmCommand = (args) => (process.env.npm_execpath ? [process.execPath, [process.env.npm_execpath, ...args]] : ['npm', args]);
const npm = (args, cwd = root, options = {}) => run(...npmCommand(args), { cwd, ...options });
const writeJson = (file, value) => writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
const names = Object.keys(platforms).map((platform) => `@wsbroker/${platform}`).sort();

/**
 * Throws unless every platform package is listed by wsbroker, named, versioned and linked to the
 * repository like it (npm publish --provenance refuses a package without repository), and holds its
 * binaries.
 */
function checkRelease() {
  const main = readJson(path.join(root, 'package.json'));
  const problems = [];
  if (!main.repository?.url) problems.push('package.json: no repository.url');
  if (JSON.stringify(Object.keys(main.optionalDependencies ?? {}).sort()) !== JSON.stringify(names)) {
    problems.push(`package.json: optionalDependencies must be exactly ${names.join(', ')}`);
  }
  for (const platform of Object.keys(platforms)) {
    const name = `@wsbroker/${platform}`;
    const pkg = readJson(path.join(packageDir(platform), 'package.json'));
    if (pkg.name !== name) problems.push(`npm/${platform}/package.json: name ${pkg.name}, not ${name}`);
    if (pkg.version !== main.version) problems.push(`npm/${platform}/package.json: version ${pkg.version}, not ${main.version}`);
    if (main.optionalDependencies?.[name] !== main.version) problems.push(`package.json: optionalDependencies ${name} is not ${main.version}`);
    if (pkg.repository?.url !== main.repository?.url) problems.push(`npm/${platform}/package.json: repository.url ${pkg.repository?.url}, not ${main.repository?.url}`);
    try {
      checkPackage(platform);
    } catch (err) {
      problems.push(err.message);
    }
  }
  if (problems.length > 0) throw new Error(`not ready to publish:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
}

/**
 * Throws when a package name is already on the registry at this version or a later one: npm would
 * refuse the publish (or, in a dry run, fail on the "latest" tag with a message that hides why).
 * The registry is read without logging in; a network failure is reported, not ignored.
 */
function checkRegistry() {
  const { version } = readJson(path.join(root, 'package.json'));
  const problems = [];
  for (const name of [...names, readJson(path.join(root, 'package.json')).name]) {
    const r = spawnSync(...npmCommand(['view', name, 'version', 'repository.url', '--json']), { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) {
      if (/E404/.test(r.stderr)) continue; // not published yet
      throw new Error(`npm view ${name} failed: ${r.stderr.trim().split('\n')[0]}`);
    }
    const published = JSON.parse(r.stdout);
    if (semver.gte(published.version, version)) {
      const from = published['repository.url'] ? ` from ${published['repository.url']}` : '';
      problems.push(`${name}: version ${published.version}${from} is on the registry already, not older than ${version}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`cannot publish:\n${problems.map((p) => `  - ${p}`).join('\n')}\n  (a name that belongs to another publisher needs a new name or a scope in package.json)`);
  }
}

function publish(npmFlags) {
  checkRelease();
  checkRegistry();
  const flags = ['--access', 'public', ...npmFlags];
  // The platform packages first: wsbroker must not be installable before its binaries are.
  for (const platform of Object.keys(platforms)) npm(['publish', ...flags], packageDir(platform));
  npm(['publish', ...flags]);
}

/**
 * The lock's entry for a platform package, as npm writes it once the package is published (then it
 * adds resolved and integrity): npm ci needs one for every optional dependency, and, before the
 * first publish, skips the unfetchable one with a warning.
 */
function lockEntry(platform, version) {
  const { cpu, libc, license, os, engines } = readJson(path.join(packageDir(platform), 'package.json'));
  return { version, cpu, libc, license, optional: true, os, engines };
}

function setVersion(spec) {
  // Its stdout would be a second line of ours, which the workflow reads.
  npm(['version', spec, '--no-git-tag-version', '--allow-same-version', '--ignore-scripts'], root, { stdio: ['ignore', 'ignore', 'inherit'] });
  const main = readJson(path.join(root, 'package.json'));
  main.optionalDependencies = Object.fromEntries(names.map((name) => [name, main.version]));
  writeJson(path.join(root, 'package.json'), main);
  for (const platform of Object.keys(platforms)) {
    const file = path.join(packageDir(platform), 'package.json');
    writeJson(file, { ...readJson(file), version: main.version });
  }
  const lock = readJson(path.join(root, 'package-lock.json'));
  lock.packages[''].optionalDependencies = main.optionalDependencies;
  for (const platform of Object.keys(platforms)) lock.packages[`node_modules/@wsbroker/${platform}`] = lockEntry(platform, main.version);
  lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => a.localeCompare(b)));
  writeJson(path.join(root, 'package-lock.json'), lock);
  console.log(main.version);
}

function startWorkflow(spec = 'patch') {
  const gh = spawnSync('gh', ['workflow', 'run', 'release.yml', '-f', `version=${spec}`, '-f', 'dryrun=false'], { cwd: root, stdio: 'inherit' });
  if (gh.error?.code === 'ENOENT') {
    throw new Error('npm run release needs the GitHub CLI (https://cli.github.com/), logged in to the repository, to start .github/workflows/release.yml');
  }
  if (gh.status !== 0) throw new Error(`gh workflow run release.yml failed (exit status ${gh.status})`);
}

const [command, ...rest] = process.argv.slice(2);
try {
  switch (command) {
    case 'release':
      startWorkflow(rest[0]);
      break;
    case 'dryrun':
      run(process.execPath, [path.join(root, 'scripts', 'build.mjs')]);
      run(process.execPath, [path.join(root, 'scripts', 'build.mjs'), '--cross']);
      publish(['--dry-run']);
      break;
    case 'version':
      if (rest.length !== 1) throw new Error('usage: node scripts/release.mjs version <patch|minor|major|x.y.z>');
      setVersion(rest[0]);
      break;
    case 'publish':
      publish(rest);
      break;
    default:
      throw new Error('usage: node scripts/release.mjs release [patch|minor|major] | dryrun | version <spec> | publish [npm publish flags]');
  }
} catch (err) {
  console.error(`wsbroker: ${err.message}`);
  process.exit(1);
}
