"""Named bits of the STDF flag fields the reader interprets (STDF V4 specification: PTR, MPR, FTR, PRR).

The synthetic STDF generators (development tools) write the same bits, so a reader test and its fixture
speak one vocabulary.
"""

from __future__ import annotations

# PTR/MPR/FTR TEST_FLG
TEST_ALARM = 0x01
TEST_RESULT_INVALID = 0x02  # PTR/MPR: RESULT is not valid
TEST_UNRELIABLE = 0x04
TEST_TIMEOUT = 0x08
TEST_NOT_EXECUTED = 0x10
TEST_ABORTED = 0x20
TEST_NO_PASS_FAIL = 0x40  # no pass/fail indication
TEST_FAILED = 0x80
TEST_INVALIDATING = 0x3F  # bits 0-5: any of them makes the result unusable for statistics

# PTR/MPR PARM_FLG
PARM_SCALE_ERROR = 0x01
PARM_DRIFT = 0x02
PARM_OSCILLATION = 0x04
PARM_ABOVE = 0x08  # measured value higher than the high test limit
PARM_BELOW = 0x10  # measured value lower than the low test limit
PARM_ALTERNATE_PASS = 0x20
PARM_LO_EQ_PASS = 0x40  # a result equal to the low limit passes
PARM_HI_EQ_PASS = 0x80  # a result equal to the high limit passes
PARM_EQ_PASS = PARM_LO_EQ_PASS | PARM_HI_EQ_PASS
PARM_INVALIDATING = PARM_SCALE_ERROR | PARM_DRIFT | PARM_OSCILLATION

# PTR/MPR OPT_FLAG (set bit = the field is invalid / absent)
OPT_NO_RES_SCAL = 0x01
OPT_NO_START_INCR = 0x02  # MPR START_IN/INCR_IN invalid; reserved (set) in PTR
OPT_NO_LO_SPEC = 0x04
OPT_NO_HI_SPEC = 0x08
OPT_LO_LIMIT_DEFAULT = 0x10  # LO_LIMIT invalid here: use the default record's
OPT_HI_LIMIT_DEFAULT = 0x20
OPT_NO_LO_LIMIT = 0x40
OPT_NO_HI_LIMIT = 0x80
OPT_LO_LIMIT_UNUSABLE = OPT_NO_LO_LIMIT | OPT_LO_LIMIT_DEFAULT  # LLM_SCAL is meaningless then too
OPT_HI_LIMIT_UNUSABLE = OPT_NO_HI_LIMIT | OPT_HI_LIMIT_DEFAULT

# PRR PART_FLG
PART_SUPERSEDES_ID = 0x01
PART_SUPERSEDES_XY = 0x02
PART_ABNORMAL_END = 0x04
PART_FAILED = 0x08
PART_NO_PASS_FAIL = 0x10

# MPR RTN_STAT states
PIN_PASS, PIN_FAIL_LOW, PIN_FAIL_HIGH = 1, 5, 6
