/**
 * Deploy-time settings as OVF properties: the ones every appliance offers (host name, network, keys, root
 * password) and the app's own, which reach its service as environment variables. The vSphere deploy wizard,
 * `govc import.ova -options` and ovftool `--prop:` set them; c2v's guest agent (templates/guest/) applies them on
 * every boot. Pure: flags and image labels in, the OVF's property list out.
 */
import type { ImageCommand } from './app-service.js';

export type AppPropertyType = 'string' | 'password' | 'int' | 'bool';
export const APP_PROPERTY_TYPES: readonly AppPropertyType[] = ['string', 'password', 'int', 'bool'];

/** One `--property NAME[:TYPE][=DEFAULT]`, or one `c2v.property.NAME` label. */
export interface AppPropertySpec {
  name: string;
  type: AppPropertyType;
  default?: string;
}

export interface AppProperty extends AppPropertySpec {
  label: string;
  description?: string;
}

/** A property as the OVF declares it. */
export interface OvfProperty {
  key: string;
  type: 'string' | 'int' | 'boolean';
  password: boolean;
  value: string;
  label: string;
  description: string;
  category: string;
}

/** The environment variable a property becomes; the agent checks the same pattern again in the guest. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Its OVF key: the agent exports `app.NAME` as NAME. */
export const APP_KEY_PREFIX = 'app.';
/** Image labels that declare properties: `c2v.property.PORT=int=8080`, `c2v.property.PORT.description=...`. */
export const PROPERTY_LABEL_PREFIX = 'c2v.property.';

export class PropertyError extends Error {}

/** Parses `NAME[:TYPE][=DEFAULT]`; `what` names the flag or label in messages. */
export function parsePropertySpec(text: string, what = '--property'): AppPropertySpec {
  const eq = text.indexOf('=');
  const head = eq < 0 ? text : text.slice(0, eq);
  const value = eq < 0 ? undefined : text.slice(eq + 1);
  const [name, type = 'string', ...rest] = head.split(':');
  if (!ENV_NAME.test(name) || rest.length) {
    throw new PropertyError(`${what} ${JSON.stringify(text)}: the name must be an environment variable name (letters, digits, _), as NAME[:TYPE][=DEFAULT]`);
  }
  if (!(APP_PROPERTY_TYPES as readonly string[]).includes(type)) {
    throw new PropertyError(`${what} ${JSON.stringify(text)}: the type must be one of ${APP_PROPERTY_TYPES.join(', ')}`);
  }
  const spec: AppPropertySpec = { name, type: type as AppPropertyType, default: value };
  checkDefault(spec, what);
  return spec;
}

function checkDefault(spec: AppPropertySpec, what: string): void {
  const v = spec.default;
  if (v === undefined) return;
  if (spec.type === 'int' && !/^-?[0-9]{1,18}$/.test(v)) throw new PropertyError(`${what} ${spec.name}: the default of an int property must be a whole number, not ${JSON.stringify(v)}`);
  if (spec.type === 'bool' && v !== 'true' && v !== 'false') throw new PropertyError(`${what} ${spec.name}: the default of a bool property must be true or false, not ${JSON.stringify(v)}`);
  if (v.includes('\0')) throw new PropertyError(`${what} ${spec.name}: the default contains a NUL byte`);
}

/** `--property-help NAME=TEXT`: the description the deploy wizard shows under the property. */
export function parsePropertyHelp(text: string): { name: string; description: string } {
  const eq = text.indexOf('=');
  const name = eq < 0 ? text : text.slice(0, eq);
  if (eq < 0 || !ENV_NAME.test(name)) throw new PropertyError(`--property-help ${JSON.stringify(text)}: write NAME=TEXT, NAME being a --property name`);
  return { name, description: text.slice(eq + 1) };
}

export interface AppPropertiesRequest {
  flags: readonly AppPropertySpec[];
  help: readonly { name: string; description: string }[];
  labels: Readonly<Record<string, string>>;
  command: ImageCommand;
}

/**
 * The app's properties: the image's labels first, then the flags (a flag replaces a label of the same name).
 * Without a default, a property offers the value the image's ENV gives it, so the wizard shows what the app
 * would get anyway; never for passwords, whose field the wizard masks and whose value belongs to the deployer.
 */
export function appProperties(req: AppPropertiesRequest): AppProperty[] {
  const byName = new Map<string, AppProperty>();
  for (const [key, value] of Object.entries(req.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!key.startsWith(PROPERTY_LABEL_PREFIX)) continue;
    const rest = key.slice(PROPERTY_LABEL_PREFIX.length);
    if (rest.includes('.')) continue; // .label and .description, read below
    const spec = parsePropertySpec(`${rest}${value.startsWith('=') ? '' : ':'}${value}`, `the image label ${key}`);
    byName.set(spec.name, { ...spec, label: spec.name });
  }
  for (const flag of req.flags) byName.set(flag.name, { ...flag, label: flag.name });
  for (const p of byName.values()) {
    const label = req.labels[`${PROPERTY_LABEL_PREFIX}${p.name}.label`];
    const description = req.labels[`${PROPERTY_LABEL_PREFIX}${p.name}.description`];
    if (label) p.label = label;
    if (description) p.description = description;
  }
  for (const h of req.help) {
    const p = byName.get(h.name);
    if (!p) throw new PropertyError(`--property-help ${h.name}: there is no property ${h.name}; declare it with --property ${h.name} or a ${PROPERTY_LABEL_PREFIX}${h.name} label`);
    p.description = h.description;
  }
  const env = envOf(req.command);
  for (const p of byName.values()) {
    if (p.default === undefined && p.type !== 'password' && env.has(p.name)) p.default = env.get(p.name);
  }
  return [...byName.values()];
}

function envOf(command: ImageCommand): Map<string, string> {
  const env = new Map<string, string>();
  for (const kv of command.env) {
    const eq = kv.indexOf('=');
    if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  return env;
}

export interface GuestCapabilities {
  /** c2v manages the guest's network (its packages step installed ifupdown or NetworkManager). */
  network: boolean;
  /** An SSH server is installed, so keys are worth asking for. */
  sshd: boolean;
}

const NETWORK = 'Network';
const ACCESS = 'Access';
const APPLICATION = 'Application';

const std = (key: string, label: string, description: string, category: string, password = false): OvfProperty => ({
  key: `c2v.${key}`,
  type: 'string',
  password,
  value: '',
  label,
  description,
  category,
});

/** The properties every appliance offers; an empty value keeps what the image has (DHCP, its host name). */
export function standardProperties(guest: GuestCapabilities): OvfProperty[] {
  const props = [std('hostname', 'Host name', 'The host name, or a fully qualified name (empty: the name the image has).', NETWORK)];
  if (guest.network) {
    props.push(
      std('ipv4', 'IPv4 address', 'Address and prefix length of the first network adapter, like 192.168.10.20/24 (empty: DHCP).', NETWORK),
      std('gateway', 'IPv4 gateway', 'The default gateway, with a static address.', NETWORK),
      std('dns', 'DNS servers', 'Name server addresses, separated by spaces or commas.', NETWORK),
      std('search', 'DNS search domains', 'Domains to search, separated by spaces or commas.', NETWORK),
    );
  }
  props.push(std('ntp', 'NTP servers', 'Time servers, separated by spaces or commas (needs an NTP client in the image).', NETWORK));
  if (guest.sshd) props.push(std('ssh_keys', 'SSH public keys for root', 'authorized_keys lines for root, one per line.', ACCESS));
  props.push(std('root_password', 'Root password', 'Sets the root password; the guest keeps only its hash (empty: unchanged).', ACCESS, true));
  return props;
}

/** What cloud-init's OVF datasource reads (its documented keys), for --cloud-init appliances. */
export function cloudInitProperties(): OvfProperty[] {
  const ci = (key: string, label: string, description: string, value = '', password = false): OvfProperty => ({ key, type: 'string', password, value, label, description, category: 'cloud-init' });
  return [
    ci('instance-id', 'Instance id', 'A new id makes cloud-init configure the VM again, as a new instance.', 'id-ovf'),
    ci('hostname', 'Host name', 'The host name (empty: the image\'s).'),
    ci('public-keys', 'SSH public keys', 'authorized_keys lines for the default user.'),
    ci('user-data', 'User data', 'cloud-init user data (#cloud-config ...), base64-encoded.'),
    ci('password', 'Default user password', 'The default user\'s password (empty: none).', '', true),
    ci('seedfrom', 'Seed URL', 'A URL to read meta-data and user-data from (optional).'),
  ];
}

export function appOvfProperties(props: readonly AppProperty[]): OvfProperty[] {
  return props.map((p) => ({
    key: `${APP_KEY_PREFIX}${p.name}`,
    type: p.type === 'int' ? 'int' : p.type === 'bool' ? 'boolean' : 'string',
    password: p.type === 'password',
    value: p.default ?? (p.type === 'bool' ? 'false' : ''),
    label: p.label,
    description: p.description ?? `The app's ${p.name} environment variable.`,
    category: APPLICATION,
  }));
}
