"""SoC targets: the simulation (``sim.py``) and one file per FPGA board (platform, clock
generator, DRAM). ``BOARDS`` maps a board's name to its ``soc.board.Board``."""

from soc.targets import ecpix5, ulx3s

BOARDS = {b.name: b for b in (ulx3s.BOARD, ecpix5.BOARD)}


class UnknownBoard(ValueError):
    pass


def get_board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoard(f"unknown board {name!r}; valid boards: {', '.join(sorted(BOARDS))}")
