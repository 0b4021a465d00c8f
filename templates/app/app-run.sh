#!/bin/sh
{{! Installed as /usr/local/lib/c2v/app-run: the image's ENTRYPOINT + CMD with its ENV and WORKDIR. One POSIX-sh }}
{{! wrapper carries the environment and argv for every init system, so there is one quoting scheme (| sh). }}
# Written by c2v: the command of {{source | comment}}, as the container would run it.
{{#each env as var}}
{{! shellcheck disable=SC2016,SC1003 # the image's own data, single-quoted so that nothing in it expands }}
export {{var.key | word}}={{var.value | sh}}
{{/each}}
{{#if deployEnv}}
# Deploy-time values (OVF properties), written at boot by c2v's guest agent, override the image's.
{{! shellcheck disable=SC1090 # the agent writes it at boot, quoted; there is nothing to follow at lint time }}
if [ -r {{deployEnv | sh}} ]; then . {{deployEnv | sh}}; fi
{{/if}}
{{! shellcheck disable=SC2016,SC1003 # the image's own data, single-quoted so that nothing in it expands }}
cd {{workingDir | sh}} || exit 1
{{! shellcheck disable=SC2016,SC1003 # the image's own data, single-quoted so that nothing in it expands }}
exec {{argv | sh}}
