from cryptoarb.core.books import Book, BookStore, Freshness, tradeable
from cryptoarb.model import BookUpdate


def snap(seq: int, bids, asks, at: float = 0.0) -> BookUpdate:
    return BookUpdate("v", "A-B", tuple(bids), tuple(asks), seq, 0, at)


def delta(start: int, end: int, bids=(), asks=(), at: float = 0.0) -> BookUpdate:
    return BookUpdate("v", "A-B", tuple(bids), tuple(asks), end, 0, at, snapshot=False, sequence_start=start)


def test_delta_inserts_updates_and_deletes_levels_in_order():
    book = Book("v", "A-B")
    book.apply(snap(10, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0), (103.0, 1.0)]))
    assert book.apply(delta(11, 12, bids=[(99.5, 3.0), (100.0, 0.0)], asks=[(102.0, 4.0), (101.0, 5.0)]))
    assert book.bids == [(99.5, 3.0), (99.0, 2.0)]
    assert book.asks == [(101.0, 5.0), (102.0, 4.0), (103.0, 1.0)]
    assert book.sequence == 12


def test_gap_marks_book_untradeable_until_next_snapshot():
    book = Book("v", "A-B")
    book.apply(snap(10, [(100.0, 1.0)], [(101.0, 1.0)], at=5.0))
    assert tradeable(book, 5.0, Freshness(2.0)) is None
    assert not book.apply(delta(13, 13, bids=[(100.5, 1.0)]))  # 11 and 12 were skipped
    assert tradeable(book, 5.0, Freshness(2.0)) == "stale_book"
    assert not book.apply(delta(14, 14, bids=[(100.6, 1.0)]))  # still gapped: deltas can't heal it
    book.apply(snap(20, [(100.0, 1.0)], [(101.0, 1.0)], at=6.0))
    assert tradeable(book, 6.0, Freshness(2.0)) is None


def test_old_delta_already_in_snapshot_is_ignored():
    book = Book("v", "A-B")
    book.apply(snap(10, [(100.0, 1.0)], [(101.0, 1.0)]))
    assert book.apply(delta(9, 10, bids=[(100.0, 0.0)]))
    assert list(book.bids) == [(100.0, 1.0)]


def test_stale_and_crossed_books_are_not_tradeable():
    book = Book("v", "A-B")
    book.apply(snap(1, [(100.0, 1.0)], [(101.0, 1.0)], at=0.0))
    assert tradeable(book, 2.5, Freshness(2.0)) == "stale_book"
    book.apply(snap(2, [(102.0, 1.0)], [(101.0, 1.0)], at=3.0))
    assert tradeable(book, 3.0, Freshness(2.0)) == "crossed_book"
    assert tradeable(None, 0.0, Freshness()) == "stale_book"


def test_store_creates_books_on_first_update():
    store = BookStore()
    store.apply(snap(1, [(1.0, 1.0)], [(2.0, 1.0)]))
    assert len(store) == 1 and store.get(("v", "A-B")).best_ask == 2.0


def test_quiet_book_on_a_live_stream_stays_fresh_until_the_stream_goes_quiet():
    store = BookStore()
    book = store.apply(snap(1, [(100.0, 1.0)], [(101.0, 1.0)], at=0.0))
    freshness = Freshness(2.0)
    assert tradeable(book, 5.0, freshness) == "stale_book"  # unchanged and nothing proves the stream alive
    store.liveness("v").alive_at = 4.5  # another book's message arrived on the same stream
    assert tradeable(book, 5.0, freshness) is None
    assert tradeable(book, 7.0, freshness) == "stale_book"  # the stream itself went quiet
    book.mark_gapped()
    store.liveness("v").alive_at = 7.0
    assert tradeable(book, 7.0, freshness) == "stale_book"  # alive but gapped is never tradeable
