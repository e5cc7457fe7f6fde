// docs/config.md, generated from the configuration schema (the single
// source): `node dist/src/config/docs.js > docs/config.md`. A unit test
// fails when the page and the schema disagree.
import { CONFIG_SCHEMA, SINK_SCHEMA, SOURCE_SCHEMA } from './schema.js';

type Prop = { description?: string; default?: unknown; enum?: readonly unknown[]; type?: unknown; items?: { enum?: readonly unknown[]; type?: unknown }; const?: unknown; minimum?: number; maximum?: number };

function typeOf(p: Prop): string {
  if (p.const !== undefined) return JSON.stringify(p.const);
  if (p.enum) return p.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (p.type === 'array') {
    const it = p.items ?? {};
    const inner = it.enum ? it.enum.map((v) => JSON.stringify(v)).join(' \\| ') : Array.isArray(it.type) ? it.type.join(' or ') : String(it.type);
    return `array of ${inner}`;
  }
  let t = String(p.type);
  if (p.minimum !== undefined || p.maximum !== undefined) t += ` (${p.minimum ?? ''}..${p.maximum ?? ''})`;
  return t;
}

function table(props: Record<string, Prop>, required: readonly string[] = []): string {
  let s = '| key | type | default | meaning |\n|---|---|---|---|\n';
  for (const [k, p] of Object.entries(props)) {
    const def = required.includes(k) ? '(required)' : p.default === undefined ? '' : `\`${JSON.stringify(p.default)}\``;
    s += `| \`${k}\` | ${typeOf(p)} | ${def} | ${(p.description ?? '').replace(/\|/g, '\\|')} |\n`;
  }
  return s;
}

export function renderConfigDocs(): string {
  return `# Configuration (\`conntrail run --config FILE\`)

<!-- generated from src/config/schema.ts by src/config/docs.ts: do not edit -->

A TOML file, validated as a whole before anything starts
(\`conntrail check-config FILE\` does only that). Every error names the file,
the line and the key. A file that starts with \`{\` is read as VyOS's
conntrack-logger JSON configuration instead (see the README).

## Top level

${table(CONFIG_SCHEMA.properties as unknown as Record<string, Prop>, CONFIG_SCHEMA.required)}
## \`[[source]]\`

${SOURCE_SCHEMA.description}

${table(SOURCE_SCHEMA.properties as unknown as Record<string, Prop>)}
## \`[[sink]]\`

${SINK_SCHEMA.description}

${table(SINK_SCHEMA.properties as unknown as Record<string, Prop>, SINK_SCHEMA.required)}
## Example

\`\`\`toml
log_level = "info"

[[source]]
name = "fw"
events = ["new", "destroy"]
not_src = ["192.168.100.0/24"]

[[sink]]
type = "file"
path = "/var/log/conntrail/flows.json"
format = "ulogd-json"
when_full = "block"

[[sink]]
type = "stdout"
format = "conntrack"
output = ["id"]
\`\`\`
`;
}

if (process.argv[1]?.endsWith('docs.js')) process.stdout.write(renderConfigDocs());
