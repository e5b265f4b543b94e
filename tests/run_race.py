"""A training process that stays up across trials (torch imported once), for tests that start two real
processes on one run folder at the same moment many times over."""

from __future__ import annotations

import time


def serve(conn) -> None:
    """Answer (overrides, out, start_at, wait_for) messages until None: at time.time() `start_at`, train
    the run and send back 'trained', 'finished' (already done), 'locked' (refused) or the error. `wait_for`, a run
    folder, holds this process between its "finished?" check and its lock until that folder's run has
    finished and released its lock: the window in which a finishing run used to be retrained."""
    import torch

    import iseat.data
    from iseat.common.errors import OutputLocked
    from iseat.training.config import load_config
    from iseat.training.loop import LOCK, SUMMARY, train

    torch.set_num_threads(1)
    load_data = iseat.data.load_data
    while (message := conn.recv()) is not None:
        overrides, out, start_at, wait_for = message

        def held_load_data(*args, wait_for=wait_for, **kwargs):
            while wait_for and (not (wait_for / SUMMARY).exists() or (wait_for / LOCK).exists()):
                time.sleep(0.005)
            return load_data(*args, **kwargs)

        iseat.data.load_data = held_load_data
        cfg, lines = load_config(None, overrides), []
        time.sleep(max(0.0, start_at - time.time()))
        try:
            train(cfg, out, say=lines.append)
            conn.send("trained" if any(line.startswith("done:") for line in lines) else "finished")
        except OutputLocked:
            conn.send("locked")
        except Exception as err:  # anything else fails the test instead of hanging it
            conn.send(f"error: {type(err).__name__}: {err}")
