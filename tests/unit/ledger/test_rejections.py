from ledger.rejections import Reason, Rejection, first, order
from ledger.validation import CHECKS

DESIGN_ORDER = [
    "wire_format_invalid",
    "schema_unknown",
    "schema_subject_mismatch",
    "payload_undecodable",
    "event_type_unknown",
    "event_id_invalid",
    "field_too_long",
    "amount_must_be_positive",
    "amount_exceeds_precision",
    "timestamp_out_of_range",
    "period_invalid",
    "reference_unknown",
    "amount_lines_mismatch",
    "event_id_conflict",
    "compensation_target_unknown",
    "compensation_target_not_reversible",
    "period_closed",
    "processing_error",
]


def test_reasons_are_declared_in_the_precedence_order_of_the_design():
    assert [reason.value for reason in Reason] == DESIGN_ORDER


def test_order_ranks_earlier_reasons_first():
    assert order(Reason.EVENT_ID_INVALID) < order(Reason.REFERENCE_UNKNOWN)
    assert Reason.WIRE_FORMAT_INVALID.order == 0
    assert first([Reason.REFERENCE_UNKNOWN, Reason.AMOUNT_MUST_BE_POSITIVE]) is (
        Reason.AMOUNT_MUST_BE_POSITIVE
    )


def test_validation_checks_run_in_the_order_of_the_reasons():
    reasons = [reason for reason, _ in CHECKS]
    assert reasons == sorted(reasons, key=order)
    assert reasons[0] is Reason.EVENT_TYPE_UNKNOWN
    assert reasons[-1] is Reason.AMOUNT_LINES_MISMATCH


def test_a_rejection_is_an_immutable_value():
    rejection = Rejection(Reason.PERIOD_INVALID, "data.period '2024-13'")
    assert rejection == Rejection(Reason.PERIOD_INVALID, "data.period '2024-13'")
    assert str(rejection.reason) == "period_invalid"
