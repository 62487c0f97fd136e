"""Run one promotion in its own process (for the concurrent-promoters tests).

Usage: python promoter.py TRACKING_URI NAME VERSION START_EPOCH [--file-lock]
Waits until START_EPOCH so that several promoters race, then prints the result as JSON.
"""

from __future__ import annotations

import json
import sys
import time

from skysense.config import MetricRule, PromotionPolicy
from skysense.registry.promotion import promote
from skysense.registry.tracking import connect, sqlite_path

uri, name, version, start = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
client = connect(uri)
policy = PromotionPolicy(decide={"linear_acc": MetricRule(min_improvement=0.01)}, no_regress={})
db = sqlite_path(uri) if "--file-lock" in sys.argv else None
time.sleep(max(0.0, start - time.time()))
result = promote(client, name, policy, version=version, sqlite_db=db, lock_settle_s=0.3,
                 what=f"test promoter {version}")
print(json.dumps(result.to_dict()))
