"""The SQS pieces the consumers share: a dead-letter queue, the work queue that redrives into it, and the
alarm on the DLQ (any message visible for a minute). Built in the caller's scope, so logical ids stay
``DeadLetterQueue``, ``Queue`` and ``DeadLetterAlarm`` under each construct."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from . import constants as C


def dead_letter_queue(scope: Construct) -> sqs.Queue:
    return sqs.Queue(
        scope,
        "DeadLetterQueue",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=C.DLQ_RETENTION,
    )


def work_queue(scope: Construct, *, dlq: sqs.IQueue, timeout: Duration, max_receive_count: int) -> sqs.Queue:
    """The queue a function of ``timeout`` consumes; after ``max_receive_count`` receives a message goes to
    ``dlq``."""
    return sqs.Queue(
        scope,
        "Queue",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=Duration.seconds(timeout.to_seconds() * C.VISIBILITY_TIMEOUT_FACTOR),
        receive_message_wait_time=Duration.seconds(20),
        retention_period=Duration.days(4),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=max_receive_count),
    )


def dead_letter_alarm(scope: Construct, dlq: sqs.Queue, description: str) -> cloudwatch.Alarm:
    return cloudwatch.Alarm(
        scope,
        "DeadLetterAlarm",
        alarm_description=description,
        metric=dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(1), statistic="Maximum"),
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
