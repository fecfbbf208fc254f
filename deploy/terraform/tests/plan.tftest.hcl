# `terraform test` for the module (Terraform 1.7 or later): plans against a mock of the AWS provider,
# so no account and no network are needed, only the provider's plugin (for its schema). Run by
# test/unit/terraform.test.ts when terraform and a local copy of hashicorp/aws are there; by hand:
#   cd deploy/terraform && terraform init -backend=false && terraform test
#
# What a plan shows that reading the files cannot: the provider accepts every argument, the
# validation blocks and preconditions refuse what they should (expect_failures), the dynamic
# security group rules and the rendered user data come out as meant for the looked-up CIDRs.

mock_provider "aws" {
  override_data {
    target = data.aws_ssm_parameter.al2023
    values = { value = "ami-0123456789abcdef0" }
  }
  override_data {
    target = data.aws_subnet.gwlb["subnet-0a0000000000000a1"]
    values = { cidr_block = "198.18.0.0/28" }
  }
  override_data {
    target = data.aws_subnet.gwlb["subnet-0a0000000000000a2"]
    values = { cidr_block = "198.18.1.0/28" }
  }
  override_data {
    target = data.aws_iam_policy_document.assume_ec2
    values = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"sts:AssumeRole\",\"Principal\":{\"Service\":\"ec2.amazonaws.com\"}}]}" }
  }
  override_data {
    target = data.aws_partition.current
    values = { partition = "aws" }
  }
}

variables {
  vpc_id               = "vpc-0a00000000000000a"
  gwlb_subnet_ids      = ["subnet-0a0000000000000a1", "subnet-0a0000000000000a2"]
  appliance_subnet_ids = ["subnet-0a0000000000000b1", "subnet-0a0000000000000b2"]
  release_url          = "https://example.com/gwlbtun-0.1.0-1.x86_64.rpm"
  release_sha256       = "abababababababababababababababababababababababababababababababab"
}

run "defaults" {
  command = plan

  assert {
    condition     = aws_lb.gwlb.load_balancer_type == "gateway" && aws_lb.gwlb.enable_cross_zone_load_balancing == false
    error_message = "a gateway load balancer, cross-zone off"
  }
  assert {
    condition     = aws_lb_target_group.gwlbtun.protocol == "GENEVE" && aws_lb_target_group.gwlbtun.port == 6081
    error_message = "GENEVE on 6081"
  }
  assert {
    condition     = aws_lb_target_group.gwlbtun.health_check[0].protocol == "HTTP" && aws_lb_target_group.gwlbtun.health_check[0].port == "8080" && aws_lb_target_group.gwlbtun.health_check[0].path == "/"
    error_message = "HTTP health check on the -p port, path /"
  }
  assert {
    condition     = aws_lb_listener.gwlb.tcp_idle_timeout_seconds == 350
    error_message = "the TCP idle timeout on the listener"
  }
  assert {
    condition     = sort([for r in aws_security_group.appliance.ingress : "${r.protocol} ${r.from_port} ${join(",", r.cidr_blocks)}"]) == tolist(["tcp 8080 198.18.0.0/28", "tcp 8080 198.18.1.0/28", "udp 6081 198.18.0.0/28", "udp 6081 198.18.1.0/28"])
    error_message = "Geneve and health checks from the looked-up GWLB subnet CIDRs only"
  }
  assert {
    condition     = alltrue([for r in aws_security_group.appliance.egress : !contains(r.cidr_blocks, "0.0.0.0/0") || (r.protocol == "tcp" && r.from_port == 443 && r.to_port == 443)])
    error_message = "egress to anywhere is TCP 443 only"
  }
  assert {
    condition     = aws_launch_template.appliance.image_id == "ami-0123456789abcdef0" && aws_launch_template.appliance.metadata_options[0].http_tokens == "required" && aws_launch_template.appliance.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "the AMI from SSM; IMDSv2 only, hop limit 1"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.appliance.user_data), "-p 8080 -i 350 --gwlb-cidr 198.18.0.0/28 --gwlb-cidr 198.18.1.0/28 --drain 10\n")
    error_message = "the user data's ExecStart: one --gwlb-cidr per GWLB subnet"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.appliance.user_data), "echo 'abababababababababababababababababababababababababababababababab  /root/gwlbtun.rpm' | sha256sum -c -\ntest \"$(rpm -qp --qf '%%{ARCH}' /root/gwlbtun.rpm)\" = x86_64 || ")
    error_message = "the RPM's checksum, then its architecture, are checked"
  }
  assert {
    condition     = one(aws_autoscaling_group.appliance.initial_lifecycle_hook).heartbeat_timeout == 330 && one(aws_autoscaling_group.appliance.initial_lifecycle_hook).default_result == "CONTINUE" && aws_autoscaling_group.appliance.health_check_type == "ELB"
    error_message = "the termination lifecycle hook, ELB health checks"
  }
  assert {
    condition     = aws_vpc_endpoint_service.gwlb.acceptance_required == true
    error_message = "endpoint connections accepted by hand by default"
  }
}

run "refuses_a_plain_http_release" {
  command = plan
  variables {
    release_url = "http://example.com/gwlbtun-0.1.0-1.x86_64.rpm"
  }
  expect_failures = [var.release_url]
}

run "refuses_a_privileged_health_port" {
  command = plan
  variables {
    health_port = 1023
  }
  expect_failures = [var.health_port]
}

run "refuses_too_many_gwlb_subnets" {
  command = plan
  variables {
    gwlb_subnet_ids = ["subnet-0a0000000000000a1", "subnet-0a0000000000000a2", "subnet-0a0000000000000a3", "subnet-0a0000000000000a4", "subnet-0a0000000000000a5", "subnet-0a0000000000000a6", "subnet-0a0000000000000a7"]
  }
  expect_failures = [var.gwlb_subnet_ids]
}

run "refuses_the_rpm_of_the_other_cpu" {
  command = plan
  variables {
    architecture = "arm64"
  }
  expect_failures = [aws_launch_template.appliance]
}

run "refuses_a_termination_wait_within_the_deregistration_delay" {
  command = plan
  variables {
    termination_wait_seconds = 300
  }
  expect_failures = [aws_autoscaling_group.appliance]
}
