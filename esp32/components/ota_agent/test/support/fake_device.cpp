#include "support/fake_device.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "cJSON.h"
#include "ota_agent/image_format.h"

namespace mqota::test {

FakeDevice::FakeDevice() = default;

void FakeDevice::install(const std::vector<uint8_t>& image) {
    slots_[0] = image;
    slots_[1].clear();
    otadata_ = linux_port::OtaData{};
}

bool FakeDevice::image_valid(int slot) const {
    ImageDescription d;
    return parse_image_prefix(slots_[slot].data(), slots_[slot].size(), &d) == ImageCheck::ok;
}

int FakeDevice::boot() {
    transfer_active_ = false;
    subscriptions.clear();
    running_ = otadata_.boot([this](int s) { return image_valid(s); });
    return running_;
}

void FakeDevice::log(LogLevel level, const char* message) {
    static const char kLevels[] = "EWID";
    logs.push_back(std::string(1, kLevels[static_cast<int>(level)]) + " " + message);
    if (verbose) {
        fprintf(stderr, "    [agent] %s\n", logs.back().c_str());
    }
}

bool FakeDevice::subscribe(const char* topic) {
    subscriptions.emplace_back(topic);
    return true;
}

bool FakeDevice::publish(const char* topic, const char* payload, size_t len) {
    published.push_back(Publication{topic, std::string(payload, len)});
    return true;
}

bool FakeDevice::describe_running_image(RunningImage* out) {
    if (running_ < 0) {
        return false;
    }
    *out = RunningImage{};
    if (parse_image_prefix(slots_[running_].data(), slots_[running_].size(), &out->image) != ImageCheck::ok) {
        return false;
    }
    snprintf(out->chip, sizeof(out->chip), "%s", chip_name(out->image.chip_id) != nullptr ? chip_name(out->image.chip_id) : "linux");
    snprintf(out->slot, sizeof(out->slot), "ota_%d", running_);
    out->state = slot_state(running_);
    snprintf(out->passive_slot, sizeof(out->passive_slot), "ota_%d", 1 - running_);
    out->passive_slot_size = kSlotSize;
    return true;
}

SlotState FakeDevice::slot_state(int slot) const {
    linux_port::OtaImgState s;
    if (!otadata_.state_of(slot, &s)) {
        return SlotState::undefined;
    }
    switch (s) {
        case linux_port::OtaImgState::new_image: return SlotState::new_image;
        case linux_port::OtaImgState::pending_verify: return SlotState::pending_verify;
        case linux_port::OtaImgState::valid: return SlotState::valid;
        case linux_port::OtaImgState::invalid: return SlotState::invalid;
        case linux_port::OtaImgState::aborted: return SlotState::aborted;
        case linux_port::OtaImgState::undefined: return SlotState::undefined;
    }
    return SlotState::undefined;
}

bool FakeDevice::describe_last_invalid_image(ImageDescription* out) {
    const int slot = otadata_.last_invalid_slot();
    return slot >= 0 && parse_image_prefix(slots_[slot].data(), slots_[slot].size(), out) == ImageCheck::ok;
}

bool FakeDevice::confirm_running_image() { return otadata_.mark_valid(running_); }

bool FakeDevice::reject_running_image_and_reboot() {
    if (!otadata_.mark_invalid(running_, [this](int s) { return image_valid(s); })) {
        return false;
    }
    ++reboots;
    return true;
}

int FakeDevice::requests_for(const std::string& url) const {
    const auto it = request_count_.find(url);
    return it == request_count_.end() ? 0 : it->second;
}

TransferStatus FakeDevice::transfer_open(const TransferRequest& req, TransferStart* start) {
    transfer_active_ = false;
    const int n = request_count_[req.url]++;
    const auto it = server.find(req.url);
    if (it == server.end()) {
        start->http_status = 404;
        return TransferStatus::permanent_error;
    }
    const ServedImage& img = it->second;
    start->http_status = img.status;
    if (img.status >= 400) {
        return img.status < 500 ? TransferStatus::permanent_error : TransferStatus::transient_error;
    }
    snprintf(start->etag, sizeof(start->etag), "%s", img.etag.c_str());
    uint32_t from = 0;
    if (req.resume_offset > 0) {
        range_requests.push_back("bytes=" + std::to_string(req.resume_offset) + "- If-Range:" +
                                 (req.resume_etag != nullptr ? req.resume_etag : ""));
        const bool if_range_ok = req.resume_etag != nullptr && img.etag == req.resume_etag;
        if (img.honours_range && (if_range_ok || !img.honours_if_range) && req.resume_offset <= img.body.size()) {
            from = req.resume_offset;
        }
    }
    start->offset = from;
    start->http_status = from > 0 ? 206 : 200;
    const auto& src = from == 0 ? img.body : slots_[passive_slot()];
    if (parse_image_prefix(src.data(), src.size(), &start->image) != ImageCheck::ok) {
        return TransferStatus::permanent_error;
    }
    serving_ = &img;
    body_pos_ = from;
    sent_ = 0;
    const auto drop = img.drop_after.find(n);
    drop_at_ = drop == img.drop_after.end() ? UINT32_MAX : drop->second;
    transfer_active_ = true;
    if (from == 0) {
        slots_[passive_slot()].clear();  // esp_ota_begin erases
    } else {
        slots_[passive_slot()].resize(from);  // esp_ota_resume continues after `from`
    }
    return TransferStatus::ok;
}

TransferStatus FakeDevice::transfer_step(uint32_t* bytes_in_slot) {
    if (!transfer_active_) {
        return TransferStatus::transient_error;
    }
    auto& dst = slots_[passive_slot()];
    *bytes_in_slot = static_cast<uint32_t>(dst.size());
    if (body_pos_ >= serving_->body.size()) {
        transfer_active_ = false;
        return TransferStatus::complete;
    }
    if (sent_ >= drop_at_) {
        transfer_active_ = false;
        return TransferStatus::transient_error;
    }
    size_t n = serving_->body.size() - body_pos_;
    n = n < kChunk ? n : kChunk;
    if (drop_at_ != UINT32_MAX && sent_ + n > drop_at_) {
        n = drop_at_ - sent_;
    }
    if (dst.size() + n > kSlotSize) {
        transfer_active_ = false;
        return TransferStatus::permanent_error;
    }
    dst.insert(dst.end(), serving_->body.begin() + body_pos_, serving_->body.begin() + body_pos_ + n);
    body_pos_ += static_cast<uint32_t>(n);
    sent_ += static_cast<uint32_t>(n);
    *bytes_in_slot = static_cast<uint32_t>(dst.size());
    return TransferStatus::in_progress;
}

bool FakeDevice::slot_sha256(uint32_t length, uint8_t digest[32]) {
    const auto& s = slots_[passive_slot()];
    if (s.size() < length) {
        return false;
    }
    SHA256(s.data(), length, digest);
    return true;
}

bool FakeDevice::slot_read(uint32_t offset, void* buf, size_t len) {
    const auto& s = slots_[passive_slot()];
    if (offset > s.size() || s.size() - offset < len) {
        return false;
    }
    memcpy(buf, s.data() + offset, len);
    return true;
}

bool FakeDevice::transfer_finish_and_set_boot() {
    transfer_active_ = false;
    if (!image_valid(passive_slot())) {
        return false;
    }
    otadata_.set_boot(passive_slot());
    return true;
}

bool FakeDevice::kv_read(const char* key, void* buf, size_t cap, size_t* len) {
    const auto it = kv_.find(key);
    if (it == kv_.end() || it->second.size() > cap) {
        return false;
    }
    memcpy(buf, it->second.data(), it->second.size());
    *len = it->second.size();
    return true;
}

bool FakeDevice::kv_write(const char* key, const void* data, size_t len) {
    if (fail_kv_writes) {
        return false;
    }
    const auto* p = static_cast<const uint8_t*>(data);
    kv_[key].assign(p, p + len);
    return true;
}

bool FakeDevice::kv_erase(const char* key) {
    kv_.erase(key);
    return true;
}

std::vector<std::string> FakeDevice::statuses() const {
    std::vector<std::string> out;
    for (const auto& p : published) {
        if (p.topic.size() < 7 || p.topic.compare(p.topic.size() - 7, 7, "/status") != 0) {
            continue;
        }
        cJSON* root = cJSON_Parse(p.payload.c_str());
        const cJSON* state = cJSON_GetObjectItemCaseSensitive(root, "state");
        const cJSON* progress = cJSON_GetObjectItemCaseSensitive(root, "progress");
        std::string s = cJSON_IsString(state) ? state->valuestring : "?";
        if (cJSON_IsNumber(progress)) {
            s += ":" + std::to_string(progress->valueint);
        }
        out.push_back(s);
        cJSON_Delete(root);
    }
    return out;
}

std::vector<Publication> FakeDevice::published_on(const std::string& suffix) const {
    std::vector<Publication> out;
    for (const auto& p : published) {
        if (p.topic.size() >= suffix.size() && p.topic.compare(p.topic.size() - suffix.size(), suffix.size(), suffix) == 0) {
            out.push_back(p);
        }
    }
    return out;
}

}  // namespace mqota::test
