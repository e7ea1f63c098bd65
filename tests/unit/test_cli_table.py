from decimal import Decimal

from stratum.cli.common import table


def test_text_left_numbers_right_lot_ids_are_text():
    out = table(["lot_id", "parts", "yield"], [["840138.000", 4056, 0.9598], ["L2", 7, Decimal("1.5")]])
    assert out.splitlines() == [
        "lot_id     | parts | yield ",
        "-----------+-------+-------",
        "840138.000 |  4056 | 0.9598",
        "L2         |     7 |    1.5",
    ]
