{{! Installed as /usr/local/lib/c2v/ovf-env.awk; c2v-guest runs it with the guest's own awk (mawk, busybox, gawk). }}
# Written by c2v: reads an OVF environment (ovf-env.xml, DSP0243) for c2v-guest, with the guest's own awk.
#
#   C2V_PROPS=DIR C2V_MACS=FILE LC_ALL=C awk -f ovf-env.awk ovf-env.xml
#
# Each property's value, unescaped, goes to a file of its own, DIR/KEY, so that the shell reads it as data and
# never as code; the NICs' MAC addresses go to FILE, one a line, in the document's order. What it ignores, it
# says on stdout, one line each. Exit status 2: not a well-formed OVF environment, and nothing written.
#
# POSIX awk only: no gawk extensions, no regular-expression RS, no {n} intervals (older mawk has none). Values
# can be long (64 KiB and more): nothing here copies a string once per character or per entity.

BEGIN {
	props = ENVIRON["C2V_PROPS"]
	macs = ENVIRON["C2V_MACS"]
	if (props == "" || macs == "") {
		print "ovf-env.awk: C2V_PROPS and C2V_MACS must name where to write"
		exit 2
	}
	nline = 0
}

{ line[++nline] = $0 }

END {
	if (props == "" || macs == "") exit 2
	doc = ""
	for (li = 1; li <= nline; li++) doc = doc line[li] "\n"
	# XML's line-end normalisation: CR LF and a lone CR are LF.
	gsub(/\r\n/, "\n", doc)
	gsub(/\r/, "\n", doc)
	if (!parse(doc)) exit 2
	for (key in value) write_value(key, value[key])
	printf "" > macs
	for (li = 1; li <= nmac; li++) print mac[li] > macs
	close(macs)
}

# Fills value[key] (still escaped) and mac[1..nmac]; 0 when the document is not an OVF environment.
function parse(s,    i, j, c, q, name, an, selfclose, inent, seen, attr) {
	inent = 0
	seen = 0
	nmac = 0
	while ((i = index(s, "<")) > 0) {
		s = substr(s, i + 1)
		if (substr(s, 1, 3) == "!--") {
			if (!(j = index(s, "-->"))) return bad("an unterminated comment")
			s = substr(s, j + 3)
			continue
		}
		if (substr(s, 1, 8) == "![CDATA[") {
			if (!(j = index(s, "]]>"))) return bad("an unterminated CDATA section")
			s = substr(s, j + 3)
			continue
		}
		c = substr(s, 1, 1)
		if (c == "?" || c == "!") {
			if (!(j = index(s, ">"))) return bad("an unterminated declaration")
			s = substr(s, j + 1)
			continue
		}
		if (c == "/") {
			if (!(j = index(s, ">"))) return bad("an unterminated end tag")
			name = lname(substr(s, 2, j - 2))
			sub(/[ \t\n]+$/, "", name)
			if (name == "Entity" && inent > 0) inent--
			s = substr(s, j + 1)
			continue
		}
		if (!match(s, /^[^ \t\n\/>]+/)) return bad("a tag without a name")
		name = lname(substr(s, 1, RLENGTH))
		s = substr(s, RLENGTH + 1)
		split("", attr)
		selfclose = -1
		while (selfclose < 0) {
			match(s, /^[ \t\n]*/)
			s = substr(s, RLENGTH + 1)
			c = substr(s, 1, 1)
			if (c == ">") {
				selfclose = 0
				s = substr(s, 2)
			} else if (c == "/" && substr(s, 2, 1) == ">") {
				selfclose = 1
				s = substr(s, 3)
			} else {
				if (!match(s, /^[^ \t\n=\/>]+[ \t\n]*=[ \t\n]*/)) return bad("a malformed attribute in <" name ">")
				an = substr(s, 1, RLENGTH)
				sub(/[ \t\n]*=[ \t\n]*$/, "", an)
				s = substr(s, RLENGTH + 1)
				q = substr(s, 1, 1)
				if (q != "\"" && q != "'") return bad("an unquoted attribute in <" name ">")
				s = substr(s, 2)
				if (!(j = index(s, q))) return bad("an unterminated attribute in <" name ">")
				attr[lname(an)] = substr(s, 1, j - 1)
				s = substr(s, j + 1)
			}
		}
		if (name == "Environment") seen = 1
		# A sibling's properties (Entity, in a vApp) are its own, not this VM's.
		if (name == "Entity" && !selfclose) inent++
		else if (inent == 0 && name == "Property") property(attr)
		else if (inent == 0 && name == "Adapter") adapter(attr)
	}
	if (!seen) return bad("no <Environment> element")
	return 1
}

function bad(why) {
	print "not a well-formed OVF environment (" why "): ignored"
	return 0
}

# Namespace prefixes differ between writers (oe:, ovfenv:, none): only local names count.
function lname(n) {
	sub(/^.*:/, "", n)
	return n
}

function property(attr,    k) {
	if (!("key" in attr)) return
	k = unescape(attr["key"])
	if (k !~ /^[A-Za-z0-9_.-]+$/ || k == "." || k == ".." || length(k) > 128) {
		print "ignored a property whose key is not letters, digits, '.', '_' and '-': \"" printable(k) "\""
		return
	}
	value[k] = ("value" in attr) ? attr["value"] : ""
}

function adapter(attr,    m) {
	if (!("mac" in attr)) return
	m = tolower(unescape(attr["mac"]))
	if (m !~ /^[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]$/) {
		print "ignored an adapter whose MAC address is not xx:xx:xx:xx:xx:xx: \"" printable(m) "\""
		return
	}
	mac[++nmac] = m
}

# For log lines: one short line of plain ASCII, whatever the document holds.
function printable(s) {
	gsub(/[^ -~]/, "?", s)
	return length(s) > 60 ? substr(s, 1, 57) "..." : s
}

function write_value(k, v,    f, n, part, i, j, ent, c) {
	f = props "/" k
	# Attribute-value normalisation: a raw tab or line end is a space; character references survive it.
	gsub(/[\t\n]/, " ", v)
	printf "" > f
	n = split(v, part, "&")
	printf "%s", part[1] > f
	for (i = 2; i <= n; i++) {
		j = index(part[i], ";")
		c = j > 1 && j < 12 ? entity(substr(part[i], 1, j - 1)) : ""
		if (c == "") printf "&%s", part[i] > f
		else printf "%s%s", c, substr(part[i], j + 1) > f
	}
	close(f)
}

# Keys and MACs are short: unescaped in memory, through the same entity rules.
function unescape(v,    n, part, i, j, c, out) {
	n = split(v, part, "&")
	out = part[1]
	for (i = 2; i <= n; i++) {
		j = index(part[i], ";")
		c = j > 1 && j < 12 ? entity(substr(part[i], 1, j - 1)) : ""
		out = out (c == "" ? "&" part[i] : c substr(part[i], j + 1))
	}
	return out
}

# The text an entity or character reference stands for; "" when it is none we know (it is then kept as written).
function entity(e,    n, i, d) {
	if (e == "amp") return "&"
	if (e == "lt") return "<"
	if (e == "gt") return ">"
	if (e == "quot") return "\""
	if (e == "apos") return "'"
	if (e ~ /^#[0-9]+$/) return utf8(substr(e, 2) + 0)
	if (e !~ /^#[xX][0-9A-Fa-f]+$/) return ""
	n = 0
	for (i = 3; i <= length(e); i++) {
		d = index("0123456789abcdef", tolower(substr(e, i, 1))) - 1
		n = n * 16 + d
	}
	return utf8(n)
}

# UTF-8 bytes of a code point, written byte by byte (LC_ALL=C): %c of a number is one byte in every awk then.
function utf8(c) {
	if (c < 1 || c > 1114111 || (c >= 55296 && c <= 57343)) return ""
	if (c < 128) return sprintf("%c", c)
	if (c < 2048) return sprintf("%c%c", 192 + int(c / 64), 128 + c % 64)
	if (c < 65536) return sprintf("%c%c%c", 224 + int(c / 4096), 128 + int(c / 64) % 64, 128 + c % 64)
	return sprintf("%c%c%c%c", 240 + int(c / 262144), 128 + int(c / 4096) % 64, 128 + int(c / 64) % 64, 128 + c % 64)
}
