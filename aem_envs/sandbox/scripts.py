"""Bash fragments that run inside the sandbox container.

They use only bash builtins on their hot paths (no fork per command), so a command costs
one ``printf`` to the watchdog FIFO and one marker ``printf`` on top of the command itself.
"""

from __future__ import annotations

#: Directory (tmpfs, agent-owned) holding the watchdog FIFO and timeout flags.
STATE_DIR = "/run/aem/sh"
_STATE_PARENT = STATE_DIR.rsplit("/", 1)[0]

# Kill every process this uid can signal except the caller and (without "all") the persistent
# shell. Processes are frozen (STOP) before being killed so a fork bomb cannot outrun the
# sweep; rounds repeat until a sweep finds nothing. Root-owned processes (init, the keeper)
# cannot be signalled by the agent uid and are skipped by the failing ``kill``.
KILLALL = r"""
__aem_killall() {
  local round p pid found st t live
  for round in {1..60}; do
    found=
    for p in /proc/[0-9]*; do
      pid=${p#/proc/}
      [ "$pid" = "$BASHPID" ] && continue
      [ -z "$1" ] && [ "$pid" = "$__aem_shell" ] && continue
      # The whole file, not its first line: a process can rename itself (/proc/self/comm)
      # to "x) Z" and a newline, and a first line "PID (x) Z" looked like a zombie. The state
      # follows the last ") " (only numbers come after the name's closing parenthesis).
      st=; { read -r -d '' st < "$p/stat"; } 2>/dev/null; [ -n "$st" ] || continue
      st=${st##*) }; st=${st%% *}
      if [ "$st" = Z ] || [ "$st" = X ]; then
        # A zombie leader may head live threads (its main thread called pthread_exit): alive.
        live=; for t in "$p"/task/[0-9]*; do [ "${t##*/}" != "$pid" ] && live=1 && break; done
        [ -z "$live" ] && continue
      fi
      kill -STOP "$pid" 2>/dev/null && found="$found $pid"
    done
    [ -z "$found" ] && return 0
    kill -KILL $found 2>/dev/null
    # Killed processes need a moment to exit (a failed fork here just spins faster).
    [ "$round" -gt 2 ] && /usr/bin/sleep 0.02 2>/dev/null
  done
  return 1
}
"""

# The watchdog: a background subshell that enforces each command's deadline *inside* the
# container. Protocol on the FIFO: "s SEQ SECONDS" when a command starts, "d SEQ" when it ends.
# On a deadline it flags t$SEQ, kills everything but the shell, and if the shell itself does
# not finish within the grace (a builtin loop such as `while :; do :; done`) kills the shell
# too. It polls the shell every 0.2 s; when the shell is gone (exit, exec, kill -9 $$) it
# prints "<death token> DEAD <status>" on the shell's original stdout (fd 4) and exits, so
# the host learns at once even if background children keep the output pipe open.
WATCHDOG = r"""
__aem_wd_start() {
  { exec 8>&- 7>&-; } 2>/dev/null
  rm -f "$__aem_d/wd" "$__aem_d/ack"; mkfifo -m 600 "$__aem_d/wd" "$__aem_d/ack"
  (
    trap '' INT TERM HUP QUIT
    exec 3<>"$__aem_d/wd" 5<>"$__aem_d/ack"
    seq=; dl=0; grace=
    while :; do
      if read -r -t 0.2 op s2 t <&3; then
        if [ "$op" = s ]; then
          seq=$s2; grace=; dl=$(( ${EPOCHREALTIME/./} + 10#${t/./} * 1000 ))
        elif [ "$op" = d ] && [ "$s2" = "$seq" ]; then
          seq=
        fi
      fi
      if ! kill -0 "$__aem_shell" 2>/dev/null; then
        st=-1; read -r st 2>/dev/null < "$__aem_d/exit"
        printf '\n%s DEAD %s\n' "$__aem_dtok" "$st" >&4
        exit 0
      fi
      if [ -n "$seq" ] && [ "${EPOCHREALTIME/./}" -ge "$dl" ]; then
        if [ -z "$grace" ]; then
          : > "$__aem_d/t$seq"
          __aem_killall ""
          printf 'k\n' >&5
          grace=1; dl=$(( ${EPOCHREALTIME/./} + __AEM_GRACE_US ))
        else
          __aem_killall all
        fi
      fi
    done
  ) </dev/null >/dev/null 2>&1 4>&9 &
  __aem_wd=$!
  exec 8<>"$__aem_d/wd" 7<>"$__aem_d/ack"
}
"""

def bootstrap(
    token: str,
    workdir: str,
    scratch: str,
    cleanup: bool,
    restore_bytes: int | None,
    git_restore: bool,
    death_token: str,
    grace: float = 1.0,
) -> str:
    """The script a fresh shell runs first; ends by printing ``\\n<token> READY <rc>``.

    ``cleanup`` kills every process left by an earlier shell and wipes ``scratch`` (never
    ``workdir`` by itself);
    ``restore_bytes`` (with ``cleanup``) empties ``workdir`` and extracts the next
    ``restore_bytes`` bytes of stdin (a tar) into it; ``git_restore`` instead runs
    ``git reset --hard && git clean -fdx`` in ``workdir``.
    """
    lines = [
        "exec 2>&1",
        "set +o history 2>/dev/null; set +e +u +x +v",
        f"__aem_d={STATE_DIR}; __aem_shell=$$; __aem_rc=0; __aem_dtok={death_token}",
        KILLALL,
        WATCHDOG.replace("__AEM_GRACE_US", str(int(grace * 1e6))),
    ]
    if cleanup:
        lines += [
            "cd /",
            '__aem_killall "" || __aem_rc=1',
            # Every place the agent uid can write outside the work tree: scratch, the
            # protocol's own tmpfs (its FIFOs are recreated below), shared memory and POSIX
            # queues, and System V IPC objects (no files, but a message queue holds notes
            # for the next episode as well). chmod first: a directory made unreadable would
            # shield its contents.
            f"chmod -R u+rwX {scratch} {_STATE_PARENT} /dev/shm /dev/mqueue 2>/dev/null; "
            f"find {scratch} {_STATE_PARENT} /dev/shm /dev/mqueue -mindepth 1 -delete 2>/dev/null; "
            "ipcrm --all 2>/dev/null",
        ]
        if git_restore:
            # git obeys the agent's .git (core.fsmonitor, smudge filters may run commands), so
            # the restore goes before a second sweep of processes and of the wiped places.
            wipe = lines.pop()
            lines += [
                f"cd {workdir} && git reset -q --hard && git clean -qfdx || __aem_rc=2",
                "cd /",
                '__aem_killall "" || __aem_rc=1',
                wipe,
            ]
        elif restore_bytes is not None:
            lines.append(
                f"chmod -R u+rwX {workdir} 2>/dev/null; find {workdir} -mindepth 1 -delete 2>/dev/null; "
                f"/usr/bin/head -c {restore_bytes} | {{ /usr/bin/tar -x -p --no-same-owner -f - -C {workdir}; "
                f"__r=$?; /usr/bin/cat >/dev/null; exit $__r; }} || __aem_rc=3"
            )
            lines.append("__AEM_PAYLOAD__")
        # Without a restore the work tree stays as it is: a shell that died (``exit``) or was
        # respawned for grading keeps the agent's files (``reset`` restores an empty tar when
        # there is no snapshot).
    lines += [
        'mkdir -p "$__aem_d" "$HOME" 2>/dev/null; rm -f "$__aem_d"/t* "$__aem_d/exit" 2>/dev/null',
        "umask 022",
        "exec 9>&1",
        "trap 'builtin printf %s \"$?\" > \"$__aem_d/exit\"' EXIT",
        "__aem_wd_start",
        f"cd {workdir} 2>/dev/null || __aem_rc=4",
        f"printf '\\n%s READY %s\\n' {token[:8]}{token[8:]} \"$__aem_rc\"",
    ]
    return "\n".join(lines) + "\n"


def ansi_c_quote(cmd: str) -> str:
    """``cmd`` as a bash ``$'...'`` word: every byte outside a safe set is ``\\xHH``.

    The command reaches ``eval`` byte for byte, whatever quotes, newlines or heredocs it
    holds; an unbalanced quote becomes eval's syntax error, not a broken protocol.
    """
    out = []
    for b in cmd.encode("utf-8", errors="surrogateescape"):
        c = chr(b)
        if c.isalnum() and b < 128 or c in " _-./,:=+@%^~[]{}()<>|&;*?!#$`\"":
            out.append(c)
        elif b == 0:
            continue  # bash strings cannot hold NUL
        else:
            out.append(f"\\x{b:02x}")
    return "$'" + "".join(out) + "'"


def command_line(cmd: str, seq: int, timeout: float, token: str) -> str:
    """One line the persistent shell executes for ``cmd``.

    The end marker is printed from two halves so the literal token never appears in the
    command text (``set -x`` traces cannot imitate it). Exit status and timeout flag follow
    the token. ``</dev/null``: interactive programs see EOF instead of eating the protocol.
    """
    a, b = token[: len(token) // 2], token[len(token) // 2 :]
    t = f"{max(timeout, 0.05):.3f}"
    return (
        f"builtin kill -0 \"$__aem_wd\" 2>/dev/null || __aem_wd_start; "
        f"builtin printf 's {seq} {t}\\n' >&8; "
        f"builtin eval {ansi_c_quote(cmd)} </dev/null 7>&- 8>&- 9>&-; "
        f"__aem_ec=$?; builtin printf 'd {seq}\\n' >&8; "
        f"if [ -e \"$__aem_d/t{seq}\" ]; then __aem_to=1; builtin read -r -t 10 __aem_k <&7; {{ builtin jobs; }} >/dev/null 2>&1; else __aem_to=0; fi; "
        f"builtin printf '\\n%s%s %s %s\\n' {a} {b} \"$__aem_ec\" \"$__aem_to\" >&9\n"
    )


def put_line(path: str, nbytes: int, token: str) -> str:
    """Extract the next ``nbytes`` of stdin (a tar) into ``path`` from the persistent shell."""
    a, b = token[: len(token) // 2], token[len(token) // 2 :]
    q = ansi_c_quote(path)
    return (
        f"/usr/bin/head -c {nbytes} | {{ /usr/bin/mkdir -p {q} && "
        f"/usr/bin/tar -x -p --no-same-owner -f - -C {q}; __r=$?; /usr/bin/cat >/dev/null; exit $__r; }}; "
        f"__aem_ec=$?; builtin printf '\\n%s%s %s 0\\n' {a} {b} \"$__aem_ec\" >&9\n"
    )
