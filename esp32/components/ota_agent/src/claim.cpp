#include "ota_agent/claim.h"

#include <stdio.h>
#include <string.h>

#include "cJSON.h"
#include "ota_agent/protocol.h"

namespace mqota {

bool ClaimTopics::init(const char* claim_id, const char* device_id) {
    if (!is_valid_device_id(claim_id) || !is_valid_device_id(device_id)) {
        return false;
    }
    snprintf(client_id_, sizeof(client_id_), "%s:%s", claim_id, device_id);
    snprintf(request_, sizeof(request_), "provision/%s/request", claim_id);
    snprintf(response_, sizeof(response_), "provision/%s/response/%s", claim_id, device_id);
    return true;
}

size_t encode_claim_request(const char* csr_pem, char* out, size_t cap) {
    cJSON* root = cJSON_CreateObject();
    if (root == nullptr || cJSON_AddStringToObject(root, "csr", csr_pem) == nullptr) {
        cJSON_Delete(root);
        return 0;
    }
    const bool ok = cJSON_PrintPreallocated(root, out, static_cast<int>(cap), false) != 0;
    cJSON_Delete(root);
    return ok ? strlen(out) : 0;
}

const char* to_string(ClaimStatus status) {
    switch (status) {
        case ClaimStatus::issued: return "issued";
        case ClaimStatus::pending: return "pending";
        case ClaimStatus::refused: return "refused";
        case ClaimStatus::invalid: return "invalid";
    }
    return "?";
}

namespace {

const char* string_field(const cJSON* root, const char* name) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(root, name);
    return cJSON_IsString(item) ? item->valuestring : nullptr;
}

void copy_cut(char* out, size_t cap, const char* text) {
    snprintf(out, cap, "%s", text != nullptr ? text : "");
}

}  // namespace

ClaimAnswer decode_claim_answer(const char* payload, size_t len, const char* device_id, char* cert_pem, size_t cert_cap) {
    ClaimAnswer answer{ClaimStatus::invalid, {}, {}};
    if (len > kMaxPayloadBytes) {
        return answer;
    }
    cJSON* root = cJSON_ParseWithLength(payload, len);
    const char* status = string_field(root, "status");
    const char* id = string_field(root, "deviceId");
    if (!cJSON_IsObject(root) || status == nullptr || id == nullptr || strcmp(id, device_id) != 0) {
        cJSON_Delete(root);
        return answer;
    }
    if (strcmp(status, "issued") == 0) {
        const char* pem = string_field(root, "certPem");
        if (pem != nullptr && strstr(pem, "-----BEGIN CERTIFICATE-----") != nullptr && strlen(pem) < cert_cap) {
            memcpy(cert_pem, pem, strlen(pem) + 1);
            answer.status = ClaimStatus::issued;
        }
    } else if (strcmp(status, "pending") == 0) {
        answer.status = ClaimStatus::pending;
    } else if (strcmp(status, "refused") == 0) {
        answer.status = ClaimStatus::refused;
        copy_cut(answer.error, sizeof(answer.error), string_field(root, "error"));
        copy_cut(answer.reason, sizeof(answer.reason), string_field(root, "reason"));
    }
    cJSON_Delete(root);
    return answer;
}

}  // namespace mqota
