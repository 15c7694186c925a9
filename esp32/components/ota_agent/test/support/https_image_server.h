// A small HTTPS server for the end-to-end tests that serves firmware images the way the mqota
// server does (strong ETag "<sha256>", Range: bytes=N-, If-Range) and can misbehave on purpose:
// cut a response short, or ignore Range.
#pragma once

#include <stdint.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

typedef struct ssl_ctx_st SSL_CTX;

namespace mqota::test {

struct ImageRequest {
    std::string path;
    std::string range;     // "" if none
    std::string if_range;  // "" if none
    int status = 0;
};

class HttpsImageServer {
public:
    HttpsImageServer(const std::string& cert_file, const std::string& key_file);
    ~HttpsImageServer();

    // Serves body at /firmware/<name>; returns its URL.
    std::string serve(const std::string& name, const std::vector<uint8_t>& body);
    // The n-th request (0-based, any path) sends only `bytes` of its body, then closes.
    void cut_response(int request_index, uint32_t bytes);
    void ignore_range(bool ignore) { ignore_range_ = ignore; }
    std::vector<ImageRequest> requests() const;

private:
    void accept_loop();
    void handle(int fd);

    SSL_CTX* ctx_ = nullptr;
    int listen_fd_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> ignore_range_{false};
    mutable std::mutex mutex_;
    std::map<std::string, std::vector<uint8_t>> files_;
    std::map<int, uint32_t> cuts_;
    std::vector<ImageRequest> requests_;
};

}  // namespace mqota::test
