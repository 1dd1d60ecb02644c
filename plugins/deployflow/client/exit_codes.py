"""The client's exit codes, written once: ``python -m deployflow.client --help`` lists them, and

    python -m deployflow.client.exit_codes CODE

says what one means in a line, for a wrapper that cannot pass the code on: GNU make exits 2 whenever a recipe
fails, whatever the recipe's own code was (``make demo`` prints this line last). CI that needs the exact code
calls ``python -m deployflow.client`` itself.
"""

from __future__ import annotations

import sys
import textwrap

WIDTH = 100
SIGNALLED = 128  # a shell's code for a process killed by signal N is 128 + N

EXIT_CODES: dict[int, str] = {
    0: "done: the release succeeded; the gate was answered; the freeze was set or lifted; the aborted release was "
       "rolled back; the status or history printed",
    1: "the release failed (the run ended failed; the failing tasks' reasons are printed); an aborted release's "
       "rollback did not succeed",
    2: "refused or bad input: Airflow refused the trigger or the answer (HTTP 400, 404, 409, 422: a bad param, an "
       "unknown DAG, a gate answered since), the requester answering their own gate, a freeze already set (without "
       "--replace), a promote before the analysis passed or during a rollback, an unknown service (status, history: "
       "HTTP 404), or an argument is wrong (a malformed --url, --until, --name or --reason, a --limit out of 1 to "
       "500; argparse's usage errors)",
    3: "the password file is missing, unreadable, not JSON, or has no password for --user",
    4: "Airflow refused the login or a call (HTTP 401 or 403: wrong password, expired token, not an approver the "
       "gate assigns, no right to the Variable or to read the service's runs)",
    5: "Airflow cannot be reached: connection refused, host not found, or no answer in --http-timeout",
    6: "Airflow's answer is not what its API gives: not JSON, an unexpected shape, another HTTP error",
    7: "the run did not finish within --timeout (it goes on in Airflow)",
    8: "nothing to act on: no gate waits for an answer there; no freeze is set to lift; no release is in flight "
       "there (or it is already rolling back)",
    130: "interrupted (Ctrl-C): what was triggered goes on in Airflow",
}


def meaning(code: int) -> str:
    """One line: ``deployflow.client exited CODE: what it means``."""
    if code in EXIT_CODES:
        return f"deployflow.client exited {code}: {EXIT_CODES[code]}"
    if code > SIGNALLED:
        return f"deployflow.client exited {code}: killed by signal {code - SIGNALLED} (not one of its own codes)"
    return f"deployflow.client exited {code}: not one of its own codes ({', '.join(map(str, EXIT_CODES))})"


def table() -> str:
    """The codes as ``--help`` shows them."""
    return "exit codes:\n" + "\n".join(textwrap.fill(text, width=WIDTH, initial_indent=f"  {code:>3}  ",
                                                     subsequent_indent=" " * 7) for code, text in EXIT_CODES.items())


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print(f"usage: python -m deployflow.client.exit_codes CODE (a number; got {' '.join(argv) or 'nothing'})",
              file=sys.stderr)
        return 2
    print(meaning(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
