#include "support/https_image_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>
#include <stdexcept>

#include "support/test_image.h"

namespace mqota::test {

HttpsImageServer::HttpsImageServer(const std::string& cert_file, const std::string& key_file) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (ctx_ == nullptr || SSL_CTX_use_certificate_chain_file(ctx_, cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        throw std::runtime_error("HTTPS server TLS setup failed");
    }
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listen_fd_, 8) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        throw std::runtime_error("HTTPS server bind failed");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { accept_loop(); });
}

HttpsImageServer::~HttpsImageServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    close(listen_fd_);
    SSL_CTX_free(ctx_);
}

std::string HttpsImageServer::serve(const std::string& name, const std::vector<uint8_t>& body) {
    std::lock_guard<std::mutex> lock(mutex_);
    files_["/firmware/" + name] = body;
    return "https://127.0.0.1:" + std::to_string(port_) + "/firmware/" + name;
}

void HttpsImageServer::cut_response(int request_index, uint32_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    cuts_[request_index] = bytes;
}

std::vector<ImageRequest> HttpsImageServer::requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
}

void HttpsImageServer::accept_loop() {
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
            handle(fd);
            close(fd);
        }
    }
}

void HttpsImageServer::handle(int fd) {
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
        SSL_free(ssl);
        return;
    }
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 16384) {
        const int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
    }
    ImageRequest req;
    std::istringstream lines(head);
    std::string line;
    std::getline(lines, line);
    std::istringstream first(line);
    std::string method;
    first >> method >> req.path;
    while (std::getline(lines, line) && line != "\r") {
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        std::string value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
        while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
        if (strcasecmp(name.c_str(), "Range") == 0) req.range = value;
        if (strcasecmp(name.c_str(), "If-Range") == 0) req.if_range = value;
    }

    std::vector<uint8_t> body;
    uint32_t cut = UINT32_MAX;
    bool found = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = files_.find(req.path);
        found = it != files_.end() && method == "GET";
        if (found) body = it->second;
        const auto c = cuts_.find(static_cast<int>(requests_.size()));
        if (c != cuts_.end()) cut = c->second;
    }
    std::string response;
    size_t from = 0;
    if (!found) {
        req.status = 404;
        response = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    } else {
        const std::string etag = "\"" + sha256_hex(body) + "\"";
        const bool if_range_ok = req.if_range.empty() || req.if_range == etag;
        if (!ignore_range_ && if_range_ok && req.range.rfind("bytes=", 0) == 0 && req.range.back() == '-') {
            from = std::stoul(req.range.substr(6));
        }
        if (from > 0 && from < body.size()) {
            req.status = 206;
            response = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + std::to_string(from) + "-" +
                       std::to_string(body.size() - 1) + "/" + std::to_string(body.size()) + "\r\n";
        } else {
            from = 0;
            req.status = 200;
            response = "HTTP/1.1 200 OK\r\n";
        }
        response += "Content-Type: application/octet-stream\r\nAccept-Ranges: bytes\r\nETag: " + etag +
                    "\r\nContent-Length: " + std::to_string(body.size() - from) + "\r\nConnection: close\r\n\r\n";
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(req);
    }
    bool ok = SSL_write(ssl, response.data(), static_cast<int>(response.size())) > 0;
    size_t left = body.size() - from;
    if (cut < left) left = cut;
    const uint8_t* p = body.data() + from;
    while (ok && left > 0) {
        const int n = SSL_write(ssl, p, static_cast<int>(left < 16384 ? left : 16384));
        ok = n > 0;
        if (ok) {
            p += n;
            left -= static_cast<size_t>(n);
        }
    }
    if (cut == UINT32_MAX) SSL_shutdown(ssl);
    SSL_free(ssl);
}

}  // namespace mqota::test
