#include "curl_transfer.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <chrono>

#include "log.h"

namespace mqota::linux_port {
namespace {

using Clock = std::chrono::steady_clock;

constexpr long kConnectTimeoutSeconds = 15;
constexpr long kStallSeconds = 30;        // abort when below 1 byte/s for this long
constexpr uint32_t kOpenTimeoutMs = 60000;
constexpr uint32_t kStepMs = 50;

std::string trim(const char* data, size_t len) {
    size_t b = 0;
    size_t e = len;
    while (b < e && (data[b] == ' ' || data[b] == '\t')) ++b;
    while (e > b && (data[e - 1] == '\r' || data[e - 1] == '\n' || data[e - 1] == ' ' || data[e - 1] == '\t')) --e;
    return std::string(data + b, e - b);
}

bool header_is(const std::string& line, const char* name, std::string* value) {
    const size_t n = strlen(name);
    if (line.size() <= n || strncasecmp(line.c_str(), name, n) != 0 || line[n] != ':') {
        return false;
    }
    *value = trim(line.c_str() + n + 1, line.size() - n - 1);
    return true;
}

}  // namespace

CurlTransfer::CurlTransfer(const DeviceBundle& bundle, FlashSlots& slots, long max_bytes_per_second)
    : bundle_(bundle), slots_(slots), max_bytes_per_second_(max_bytes_per_second) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    easy_ = curl_easy_init();
    multi_ = curl_multi_init();
}

CurlTransfer::~CurlTransfer() {
    abort();
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    if (easy_ != nullptr) curl_easy_cleanup(easy_);
    if (request_headers_ != nullptr) curl_slist_free_all(request_headers_);
    curl_global_cleanup();
}

void CurlTransfer::reset_response() {
    status_ = 0;
    headers_done_ = false;
    etag_.clear();
    range_start_ = -1;
}

size_t CurlTransfer::on_header(char* data, size_t size, size_t count, void* self) {
    auto* t = static_cast<CurlTransfer*>(self);
    const size_t len = size * count;
    const std::string line = trim(data, len);
    if (line.compare(0, 5, "HTTP/") == 0) {
        t->reset_response();  // a new response: redirect hop or 100 Continue
        const size_t space = line.find(' ');
        t->status_ = space == std::string::npos ? 0 : strtol(line.c_str() + space + 1, nullptr, 10);
        return len;
    }
    std::string value;
    if (line.empty()) {
        // End of this response's headers; with FOLLOWLOCATION curl goes on after 3xx.
        t->headers_done_ = t->status_ >= 200 && !(t->status_ >= 300 && t->status_ < 400);
    } else if (header_is(line, "ETag", &value)) {
        t->etag_ = value;
    } else if (header_is(line, "Content-Range", &value)) {
        // "bytes <first>-<last>/<total>"
        if (strncasecmp(value.c_str(), "bytes ", 6) == 0) {
            char* end = nullptr;
            const long long first = strtoll(value.c_str() + 6, &end, 10);
            if (end != value.c_str() + 6 && *end == '-' && first >= 0) {
                t->range_start_ = first;
            }
        }
    }
    return len;
}

size_t CurlTransfer::on_body(char* data, size_t size, size_t count, void* self) {
    auto* t = static_cast<CurlTransfer*>(self);
    const size_t len = size * count;
    if (t->status_ != 200 && t->status_ != 206) {
        return len;  // error page: not image bytes
    }
    return t->store_body(reinterpret_cast<const uint8_t*>(data), len);
}

size_t CurlTransfer::store_body(const uint8_t* data, size_t len) {
    if (!writing_) {
        // Until the agent accepts the header, keep just enough to show it, then pause: the
        // rest of the image stays in the socket, not in memory.
        if (held_.size() >= kImagePrefixBytes) {
            paused_ = true;
            return CURL_WRITEFUNC_PAUSE;
        }
        held_.insert(held_.end(), data, data + len);
        return len;
    }
    if (max_bytes_per_second_ > 0 && static_cast<int64_t>(len) > rate_budget()) {
        paused_ = true;
        return CURL_WRITEFUNC_PAUSE;  // curl delivers the same data again after unpausing
    }
    return write_to_slot(data, len) ? len : 0;  // 0 makes curl stop with CURLE_WRITE_ERROR
}

bool CurlTransfer::write_to_slot(const uint8_t* data, size_t len) {
    rate_bytes_ += len;
    if (!slots_.write(data, len, &slot_error_text_)) {
        slot_error_ = true;
        return false;
    }
    written_ += static_cast<uint32_t>(len);
    return true;
}

bool CurlTransfer::pump(uint32_t timeout_ms, bool (*done)(const CurlTransfer&)) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!finished_) {
        int running = 0;
        curl_multi_perform(multi_, &running);
        int queued = 0;
        while (CURLMsg* m = curl_multi_info_read(multi_, &queued)) {
            if (m->msg == CURLMSG_DONE) {
                finished_ = true;
                curl_result_ = m->data.result;
            }
        }
        if (finished_ || (done != nullptr && done(*this))) {
            break;
        }
        const auto now = Clock::now();
        if (now >= deadline) {
            break;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
        curl_multi_poll(multi_, nullptr, 0, static_cast<int>(left < 100 ? left : 100), nullptr);
    }
    return !finished_;
}

TransferStatus CurlTransfer::open(const TransferRequest& request, TransferStart* start) {
    abort();
    reset_response();
    held_.clear();
    finished_ = false;
    curl_result_ = CURLE_OK;
    slot_error_ = false;
    written_ = 0;
    if (easy_ == nullptr || multi_ == nullptr) {
        return TransferStatus::transient_error;
    }

    // curl_easy_reset keeps live connections and the TLS session cache.
    curl_easy_reset(easy_);
    curl_easy_setopt(easy_, CURLOPT_URL, request.url);
    curl_easy_setopt(easy_, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(easy_, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(easy_, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy_, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(easy_, CURLOPT_CAINFO, bundle_.ca_file.c_str());
    curl_easy_setopt(easy_, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy_, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(easy_, CURLOPT_SSLCERT, bundle_.cert_file.c_str());
    curl_easy_setopt(easy_, CURLOPT_SSLKEY, bundle_.key_file.c_str());
    curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutSeconds);
    curl_easy_setopt(easy_, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(easy_, CURLOPT_LOW_SPEED_TIME, kStallSeconds);
    curl_easy_setopt(easy_, CURLOPT_USERAGENT, "mqota-linux-device");
    curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &CurlTransfer::on_header);
    curl_easy_setopt(easy_, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &CurlTransfer::on_body);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
    // No Accept-Encoding: the body must be the image bytes themselves.

    if (request_headers_ != nullptr) {
        curl_slist_free_all(request_headers_);
        request_headers_ = nullptr;
    }
    // Resume only onto bytes that are really in the slot.
    const bool resume = request.resume_offset > 0 && slots_.passive_bytes() >= request.resume_offset;
    if (resume) {
        const std::string range = "Range: bytes=" + std::to_string(request.resume_offset) + "-";
        request_headers_ = curl_slist_append(request_headers_, range.c_str());
        if (request.resume_etag != nullptr && request.resume_etag[0] != '\0') {
            // RFC 9110 §13.1.5: a changed representation comes back whole (200), not spliced.
            const std::string if_range = std::string("If-Range: ") + request.resume_etag;
            request_headers_ = curl_slist_append(request_headers_, if_range.c_str());
        }
        curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, request_headers_);
    }

    rate_start_ = std::chrono::steady_clock::now();
    rate_bytes_ = 0;
    paused_ = false;
    curl_multi_add_handle(multi_, easy_);
    active_ = true;
    log_line(LogLevel::info, "https", "GET %s%s", request.url,
             resume ? (" from byte " + std::to_string(request.resume_offset)).c_str() : "");

    pump(kOpenTimeoutMs, &CurlTransfer::header_ready);
    start->http_status = static_cast<int>(status_);
    if (!headers_done_) {
        log_line(LogLevel::warn, "https", "no response: %s",
                 finished_ ? curl_easy_strerror(static_cast<CURLcode>(curl_result_)) : "timed out");
        abort();
        return TransferStatus::transient_error;
    }
    if (status_ != 200 && status_ != 206) {
        log_line(LogLevel::warn, "https", "HTTP %ld for %s", status_, request.url);
        abort();
        const bool client_error = status_ >= 400 && status_ < 500 && status_ != 408 && status_ != 429;
        return client_error ? TransferStatus::permanent_error : TransferStatus::transient_error;
    }
    if (status_ == 206) {
        if (!resume || range_start_ < 0 || range_start_ > static_cast<long long>(request.resume_offset)) {
            log_line(LogLevel::warn, "https", "unexpected 206 (Content-Range start %lld)", range_start_);
            abort();
            return TransferStatus::transient_error;
        }
        start->offset = static_cast<uint32_t>(range_start_);
    } else {
        start->offset = 0;
    }
    snprintf(start->etag, sizeof(start->etag), "%s", etag_.size() <= kEtagMax ? etag_.c_str() : "");

    ImageCheck check;
    if (start->offset == 0) {
        check = parse_image_prefix(held_.data(), held_.size(), &start->image);
    } else {
        check = slots_.describe(slots_.passive_slot(), &start->image) ? ImageCheck::ok : ImageCheck::too_short;
    }
    if (check != ImageCheck::ok) {
        if (finished_ && curl_result_ != CURLE_OK) {
            abort();
            return TransferStatus::transient_error;  // connection dropped inside the header
        }
        log_line(LogLevel::warn, "https", "%s is not an ESP-IDF app image: %s", request.url, to_string(check));
        abort();
        return TransferStatus::permanent_error;
    }
    slot_offset_ = start->offset;
    return TransferStatus::ok;
}

TransferStatus CurlTransfer::step(uint32_t* bytes_in_slot) {
    if (!active_) {
        return TransferStatus::transient_error;
    }
    if (!writing_) {
        // The agent accepted the header: from here on the body goes to the slot.
        std::string error;
        if (!slots_.begin_write(slot_offset_, &error)) {
            log_line(LogLevel::error, "https", "%s", error.c_str());
            abort();
            return TransferStatus::permanent_error;
        }
        writing_ = true;
        std::vector<uint8_t> held;
        held.swap(held_);
        if (!held.empty() && !write_to_slot(held.data(), held.size())) {
            log_line(LogLevel::error, "https", "%s", slot_error_text_.c_str());
            abort();
            return TransferStatus::permanent_error;
        }
    }
    if (paused_ && (max_bytes_per_second_ == 0 || rate_budget() >= CURL_MAX_WRITE_SIZE)) {
        paused_ = false;
        curl_easy_pause(easy_, CURLPAUSE_CONT);
    }
    pump(kStepMs, nullptr);
    *bytes_in_slot = slot_offset_ + written_;
    if (slot_error_) {
        log_line(LogLevel::error, "https", "%s", slot_error_text_.c_str());
        abort();
        return TransferStatus::permanent_error;
    }
    if (!finished_) {
        return TransferStatus::in_progress;
    }
    const int result = curl_result_;
    abort();
    if (result != CURLE_OK) {
        log_line(LogLevel::warn, "https", "transfer interrupted: %s", curl_easy_strerror(static_cast<CURLcode>(result)));
        return TransferStatus::transient_error;
    }
    return TransferStatus::complete;
}

void CurlTransfer::abort() {
    if (active_) {
        curl_multi_remove_handle(multi_, easy_);
        active_ = false;
    }
    if (writing_) {
        slots_.end_write();  // fsync: what was written stays for a resume
        writing_ = false;
    }
    held_.clear();
}

int64_t CurlTransfer::rate_budget() const {
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - rate_start_).count();
    return static_cast<int64_t>(max_bytes_per_second_) * elapsed / 1000 - static_cast<int64_t>(rate_bytes_);
}

bool CurlTransfer::header_ready(const CurlTransfer& t) {
    // A fresh 200 must bring the image header (esp_image_header_t + esp_app_desc_t) before the
    // agent can judge it; a 206 resumes after it, and an error status has nothing to show.
    return t.headers_done_ && (t.status_ != 200 || t.held_.size() >= kImagePrefixBytes);
}

}  // namespace mqota::linux_port
