/** Text and attribute values for the XML c2v writes (OVF descriptors, OVF environments). Pure. */

// XML 1.0 cannot carry these even as character references; image labels can contain anything.
const NOT_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

export function escapeXml(value: string | number | boolean): string {
  return String(value)
    .replace(NOT_XML_CHAR, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Attribute values also need their whitespace kept: a parser would turn a raw newline into a space. */
export function xmlAttr(value: string | number | boolean): string {
  return escapeXml(value).replace(/\t/g, '&#9;').replace(/\n/g, '&#10;').replace(/\r/g, '&#13;');
}
