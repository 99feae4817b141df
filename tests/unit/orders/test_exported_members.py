from tests.unit.surface import assert_surface


def test_the_order_book_surface() -> None:
    """What code outside consumer/orders may use of the state machine."""
    assert_surface(
        "consumer.orders",
        [
            "Action",
            "Call",
            "Effect",
            "FetchTag",
            "Knowledge",
            "Op",
            "OrderBook",
            "OrderSnapshot",
            "ResultStatus",
            "SendAction",
            "SendWrite",
            "Settle",
            "SettleStatus",
            "State",
            "Write",
        ],
    )
