"""The Store: every operation the rest of the bot may perform on its database.

Each writing method is one transaction, and a job transition that moves money (fail -> refund,
deliver a success -> settle) moves it in that same transaction, so a crash can never leave a
failed job holding budget or a delivered one unpaid.

Money, in integer micro-dollars (see ledger.py): reserving a job holds its cost; the hold stays
while the job runs and after it succeeds, and is captured into 'spent' when the success is
delivered (finish_delivery), or released when the job fails or its video expires before
delivery. Quota usage is held + spent, so a hold counts against limits from the moment of the
request. Each step moves only what is still held, so repeating any of them charges nothing more.

Where the service reports what a finished job actually cost, the delivery settles at that cost
instead, in the same transaction: the difference back to the member when it is lower, charged
when higher but only within the limits the job was reserved under (what does not fit is
recorded on the job, not charged). Those limits are kept with the job when it is reserved.
"""

from __future__ import annotations

from bot.store.deliverystore import DeliveryWrites
from bot.store.intakestore import Intakes
from bot.store.jobstore import JobWrites
from bot.store.leasestore import Leases
from bot.store.ratestore import RequestLog
from bot.store.readstore import Reads
from bot.store.referencestore import References
from bot.store.timingstore import Timings
from bot.store.valuestore import Values


class Store(
    JobWrites, DeliveryWrites, Reads, Values, Intakes, Timings, RequestLog, Leases, References
):
    """Every operation the rest of the bot may perform on its database, in parts by what they
    touch: jobs and their transitions (jobstore.py), deliveries and settling (deliverystore.py),
    reads of jobs and money (readstore.py), settings, overrides and the audit (valuestore.py),
    acknowledged requests (intakestore.py), how long jobs took (timingstore.py), the
    requests made to the video API (ratestore.py), which process looks after which job
    (leasestore.py) and the reference images of jobs not yet sent (referencestore.py). All
    share one database (base.py)."""
