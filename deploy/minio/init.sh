#!/bin/sh
# One-shot MinIO setup (the minio-init service in docker-compose.yml), safe to re-run:
#   - the recordings bucket, with Object Lock (which turns versioning on) and
#     versioning stated explicitly;
#   - default encryption of the bucket with the KMS key from MINIO_KMS_SECRET_KEY;
#   - the gateway's own account, limited to that bucket (never the root account).
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${VIGIE_S3_BUCKET:?}" "${VIGIE_S3_ACCESS_KEY:?}" "${VIGIE_S3_SECRET_KEY:?}" "${VIGIE_S3_KMS_KEY_ID:?}"

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null

# The KMS key named in VIGIE_S3_KMS_KEY_ID must be the one MINIO_KMS_SECRET_KEY defines.
mc admin kms key status local "$VIGIE_S3_KMS_KEY_ID"

mc mb --ignore-existing --with-lock "local/$VIGIE_S3_BUCKET"
mc version enable "local/$VIGIE_S3_BUCKET"
mc encrypt set sse-kms "$VIGIE_S3_KMS_KEY_ID" "local/$VIGIE_S3_BUCKET"

cat > /tmp/vigie-recordings-policy.json <<POLICY
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:*"],
      "Resource": ["arn:aws:s3:::$VIGIE_S3_BUCKET", "arn:aws:s3:::$VIGIE_S3_BUCKET/*"]
    }
  ]
}
POLICY
mc admin policy create local vigie-recordings /tmp/vigie-recordings-policy.json
mc admin user add local "$VIGIE_S3_ACCESS_KEY" "$VIGIE_S3_SECRET_KEY"
mc admin policy attach local vigie-recordings --user "$VIGIE_S3_ACCESS_KEY" || true  # already attached on a re-run

mc stat "local/$VIGIE_S3_BUCKET"
mc retention info "local/$VIGIE_S3_BUCKET" --default || true
echo "minio-init: bucket $VIGIE_S3_BUCKET ready (Object Lock, versioning, SSE-KMS $VIGIE_S3_KMS_KEY_ID)"
