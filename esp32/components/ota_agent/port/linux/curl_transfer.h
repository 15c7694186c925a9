// HTTPS download of an image into the passive slot with libcurl: the server is verified with the
// mqota CA (CURLOPT_SSL_VERIFYPEER/VERIFYHOST, never disabled), the device certificate is offered
// if the server asks for one, only https is allowed (redirects included). One easy handle lives as
// long as the process, so its TLS session cache lets a resumed download skip the full handshake.
// The multi interface lets the agent drive the download one bounded step at a time.
#pragma once

#include <stdint.h>

#include <chrono>
#include <string>
#include <vector>

#include "device_bundle.h"
#include "flash_slots.h"
#include "ota_agent/platform.h"

typedef void CURL;
typedef void CURLM;
struct curl_slist;

namespace mqota::linux_port {

class CurlTransfer {
public:
    CurlTransfer(const DeviceBundle& bundle, FlashSlots& slots, long max_bytes_per_second);
    ~CurlTransfer();
    CurlTransfer(const CurlTransfer&) = delete;
    CurlTransfer& operator=(const CurlTransfer&) = delete;

    TransferStatus open(const TransferRequest& request, TransferStart* start);
    TransferStatus step(uint32_t* bytes_in_slot);
    void abort();

private:
    static size_t on_header(char* data, size_t size, size_t count, void* self);
    static size_t on_body(char* data, size_t size, size_t count, void* self);
    size_t store_body(const uint8_t* data, size_t len);
    bool write_to_slot(const uint8_t* data, size_t len);
    static bool header_ready(const CurlTransfer& t);
    // Runs curl until `done` says stop, the transfer finishes, or `timeout_ms` passes.
    // Returns false when the transfer ended (curl_result_ holds why).
    bool pump(uint32_t timeout_ms, bool (*done)(const CurlTransfer&));
    void reset_response();

    const DeviceBundle& bundle_;
    FlashSlots& slots_;
    long max_bytes_per_second_;
    CURL* easy_ = nullptr;
    CURLM* multi_ = nullptr;
    struct curl_slist* request_headers_ = nullptr;
    bool active_ = false;

    // Current response (reset for each redirect hop).
    long status_ = 0;
    bool headers_done_ = false;
    std::string etag_;
    long long range_start_ = -1;
    // Body bytes received before the agent accepted the image header; written by the first step.
    std::vector<uint8_t> held_;
    bool writing_ = false;
    uint32_t slot_offset_ = 0;   // where this response's body starts in the slot
    uint32_t written_ = 0;       // body bytes written to the slot
    bool slot_error_ = false;
    // --max-download-rate: body delivery is paused (CURL_WRITEFUNC_PAUSE) while ahead of budget.
    std::chrono::steady_clock::time_point rate_start_;
    uint64_t rate_bytes_ = 0;
    bool paused_ = false;
    int64_t rate_budget() const;
    bool finished_ = false;
    int curl_result_ = 0;
    std::string slot_error_text_;
};

}  // namespace mqota::linux_port
