"""Drive the Azure Files test server with Microsoft's SDK (azure-storage-file-share).

Usage: python_sdk.py ENDPOINT ACCOUNT KEY
Prints one JSON object describing what the SDK saw; the Rust test asserts on it.
"""
import hashlib
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.fileshare import (
    ContentSettings,
    ShareFileClient,
    ShareServiceClient,
    ShareSasPermissions,
    generate_share_sas,
)

endpoint, account, key = sys.argv[1:4]
out = {}
service = ShareServiceClient(account_url=endpoint, credential={"account_name": account, "account_key": key})
share = service.get_share_client("sdk")
share.create_share()
try:
    share.create_share()
    out["create_twice"] = "accepted"
except ResourceExistsError as e:
    out["create_twice"] = e.error_code

root = share.get_directory_client("")
share.get_directory_client("docs").create_directory()
share.get_directory_client("docs/sub").create_directory()
try:
    share.get_directory_client("missing/child").create_directory()
    out["orphan_dir"] = "accepted"
except ResourceNotFoundError as e:
    out["orphan_dir"] = e.error_code

contents = {
    "empty.txt": b"",
    "docs/a.txt": b"hello from the SDK\n",
    "docs/naïve café & co.txt": "unicode ✓".encode(),
    "docs/sub/big.bin": os.urandom(9 * 1024 * 1024 + 7),  # three Put Range calls of at most 4 MiB
}
for path, data in contents.items():
    f = share.get_file_client(path)
    # validate_content: each Put Range carries hashlib's MD5 of its bytes, which the server
    # compares with its own (a mismatch fails the upload).
    f.upload_file(data, validate_content=True,
                  content_settings=ContentSettings(content_md5=bytearray(hashlib.md5(data).digest())))

listing = []
def walk(directory, prefix):
    for item in share.get_directory_client(directory).list_directories_and_files():
        full = f"{prefix}{item['name']}"
        if item["is_directory"]:
            listing.append(full + "/")
            walk(full, full + "/")
        else:
            listing.append(f"{full}:{item['size']}")
walk("", "")
out["listing"] = sorted(listing)

out["downloads_match"] = {
    path: share.get_file_client(path).download_file().readall() == data for path, data in contents.items()
}
ranged = share.get_file_client("docs/sub/big.bin").download_file(offset=5 * 1024 * 1024, length=100).readall()
out["ranged_read_matches"] = ranged == contents["docs/sub/big.bin"][5 * 1024 * 1024 : 5 * 1024 * 1024 + 100]

out["ranges"] = [[r["start"], r["end"]] for r in share.get_file_client("docs/sub/big.bin").get_ranges()]
sparse = share.get_file_client("sparse.bin")
sparse.create_file(10 * 1024 * 1024)
sparse.upload_range(b"x" * 1024, offset=4 * 1024 * 1024, length=1024)
out["sparse_ranges"] = [[r["start"], r["end"]] for r in sparse.get_ranges()]
sparse.delete_file()

props = share.get_file_client("docs/a.txt").get_file_properties()
out["properties"] = {
    "size": props.size,
    "md5_matches": bytes(props.content_settings.content_md5 or b"") == hashlib.md5(contents["docs/a.txt"]).digest(),
}

renamed = share.get_file_client("docs/a.txt").rename_file("docs/sub/renamed.txt")
out["renamed_content"] = renamed.download_file().readall().decode()
try:
    share.get_file_client("docs/a.txt").get_file_properties()
    out["old_name_after_rename"] = "still there"
except ResourceNotFoundError as e:
    out["old_name_after_rename"] = e.error_code

share.get_file_client("empty.txt").delete_file()
try:
    share.get_file_client("empty.txt").delete_file()
    out["delete_twice"] = "accepted"
except ResourceNotFoundError as e:
    out["delete_twice"] = e.error_code

# A wrong key must be rejected.
wrong = ShareServiceClient(account_url=endpoint, credential={"account_name": account, "account_key": "d3Jvbmcga2V5" * 7 + "AA=="})
try:
    list(wrong.get_share_client("sdk").get_directory_client("").list_directories_and_files())
    out["wrong_key"] = "accepted"
except ClientAuthenticationError as e:
    out["wrong_key"] = [e.status_code, e.error_code]
except HttpResponseError as e:
    out["wrong_key"] = [e.status_code, e.error_code]

# SAS: read+list may read and list, not write; an expired one may do nothing.
def sas(permission, expiry):
    return generate_share_sas(account, "sdk", account_key=key, permission=permission, expiry=expiry)

reader = ShareServiceClient(account_url=endpoint, credential=sas(ShareSasPermissions(read=True, list=True), datetime.now(timezone.utc) + timedelta(hours=1)))
out["sas_read"] = reader.get_share_client("sdk").get_file_client("docs/sub/renamed.txt").download_file().readall().decode()
try:
    reader.get_share_client("sdk").get_file_client("docs/new.txt").upload_file(b"x")
    out["sas_write"] = "accepted"
except HttpResponseError as e:
    out["sas_write"] = [e.status_code, e.error_code]
expired = ShareServiceClient(account_url=endpoint, credential=sas(ShareSasPermissions(read=True, list=True), datetime.now(timezone.utc) - timedelta(minutes=5)))
try:
    expired.get_share_client("sdk").get_file_client("docs/sub/renamed.txt").download_file().readall()
    out["sas_expired"] = "accepted"
except HttpResponseError as e:
    out["sas_expired"] = [e.status_code, e.error_code]

try:
    list(service.get_share_client("nope").get_directory_client("").list_directories_and_files())
    out["missing_share"] = "accepted"
except ResourceNotFoundError as e:
    out["missing_share"] = e.error_code

print(json.dumps(out))
