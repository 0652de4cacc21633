"""scim2-tester against a live SCIM base URL: every check must be SUCCESS (a SKIPPED check is a
failure too: the issue asks for every check SUCCESS)."""
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

url, token = sys.argv[1], sys.argv[2]
client = SyncSCIMClient(httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30))
results = check_server(client)
bad = [r for r in results if r.status != Status.SUCCESS]
for r in results:
    print(f"{r.status.name:9} {r.title}: {str(r.reason)[:160]}")
print(f"scim2-tester: {len(results) - len(bad)} of {len(results)} checks passed")
sys.exit(1 if bad or not results else 0)
