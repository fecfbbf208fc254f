# gwlbtun appliances behind a Gateway Load Balancer: GWLB, GENEVE target group with an HTTP health
# check on gwlbtun's -p port, an Auto Scaling group of Amazon Linux 2023 instances that install the
# gwlbtun RPM at boot, a termination lifecycle hook for draining, and the VPC endpoint service that
# consumers attach GWLB endpoints to. The same resources and settings as
# deploy/cloudformation/gwlbtun.yaml (each block below names its counterpart there); walk-through
# in docs/deploy-aws.md, inputs in variables.tf, outputs in outputs.tf.
#
# Static checks: test/unit/terraform.test.ts applies the checkov rules that concern these resources
# (it lists their IDs); where a rule does not fit a GWLB appliance, the resource carries a
# `#checkov:skip=ID:reason` line, the form checkov itself reads, and the test requires the reason.
#
# Where this module differs from the template, on purpose:
# - the GWLB subnets' CIDRs are looked up (data.aws_subnet.gwlb), not typed in;
# - egress is UDP 6081 to the GWLB subnets and TCP 443 (packages, the release, SSM), not all
#   traffic: the example hooks (var.hook) return every packet through Geneve;
# - the root volume is encrypted (checkov CKV_AWS_8's rule) whatever the account's default;

data "aws_subnet" "gwlb" {
  for_each = toset(var.gwlb_subnet_ids)
  id       = each.value
}

# Amazon Linux 2023 for the chosen CPU, from AWS's public SSM parameter (the template's
# {{resolve:ssm:...}}); read at plan time, so a newer AMI reaches the group on the next apply and
# an instance refresh.
data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${local.ami_arch[var.architecture]}"
}

locals {
  # architecture -> the AMI's name and the RPM's architecture (the template's ArchMap: Ami, Rpm).
  ami_arch = { x64 = "x86_64", arm64 = "arm64" }
  rpm_arch = { x64 = "x86_64", arm64 = "aarch64" }

  # One per GWLB subnet, in gwlb_subnet_ids' order: the security group's sources and gwlbtun's
  # --gwlb-cidr flags (gwlbtun drops Geneve from anywhere else: source_not_allowed).
  gwlb_cidrs = [for s in var.gwlb_subnet_ids : data.aws_subnet.gwlb[s].cidr_block]

  # The user data's variables: user-data.sh.tftpl uses each as ${name}, nothing else (no template
  # directives; %%{ is a literal %{), so that it reads line for line as the template's Fn::Sub
  # script (test/unit/terraform.test.ts compares them).
  user_data_vars = {
    node_major       = var.node_major
    release_url      = var.release_url
    release_sha256   = var.release_sha256
    rpm_arch         = local.rpm_arch[var.architecture]
    hook             = var.hook
    health_port      = var.health_port
    tcp_idle_timeout = var.tcp_idle_timeout
    drain_seconds    = var.drain_seconds
    gwlb_cidr_flags  = join(" ", [for c in local.gwlb_cidrs : "--gwlb-cidr ${c}"])
  }
}

# GatewayLoadBalancer
resource "aws_lb" "gwlb" {
  #checkov:skip=CKV_AWS_91:a Gateway Load Balancer has no access logs (it does not terminate connections); VPC flow logs on the appliance subnets cover it
  #checkov:skip=CKV_AWS_150:deletion protection is var.deletion_protection, off by default as in the CloudFormation template so that terraform destroy works
  #checkov:skip=CKV_AWS_152:cross-zone is var.cross_zone, off by default as on GWLB itself: flows stay in their Availability Zone (no cross-AZ charges, an AZ's appliances fail alone)
  load_balancer_type               = "gateway"
  subnets                          = var.gwlb_subnet_ids
  enable_cross_zone_load_balancing = var.cross_zone
  enable_deletion_protection       = var.deletion_protection
  tags                             = merge(var.tags, { Name = "${var.name}-gwlb" })
}

# TargetGroup
resource "aws_lb_target_group" "gwlbtun" {
  protocol             = "GENEVE"
  port                 = 6081
  vpc_id               = var.vpc_id
  target_type          = "instance"
  deregistration_delay = var.deregistration_delay_seconds

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = var.health_port
    path                = "/"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 3
    unhealthy_threshold = 3
  }

  # GWLB wants both set alike.
  target_failover {
    on_deregistration = var.flow_rebalance
    on_unhealthy      = var.flow_rebalance
  }

  tags = merge(var.tags, { Name = "${var.name}-targets" })
}

# Listener
resource "aws_lb_listener" "gwlb" {
  #checkov:skip=CKV_AWS_2:a GWLB listener has no protocol or port: it carries every IP packet to the targets in Geneve, with nothing to encrypt at this layer
  #checkov:skip=CKV_AWS_103:no TLS on a GWLB listener (see CKV_AWS_2)
  load_balancer_arn        = aws_lb.gwlb.arn
  tcp_idle_timeout_seconds = var.tcp_idle_timeout

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gwlbtun.arn
  }

  tags = var.tags
}

# ApplianceSecurityGroup: Geneve and the health checks from the GWLB subnets only.
resource "aws_security_group" "appliance" {
  name_prefix = "${var.name}-"
  description = "gwlbtun appliances, Geneve and health checks from the GWLB subnets only"
  vpc_id      = var.vpc_id

  dynamic "ingress" {
    for_each = local.gwlb_cidrs
    content {
      description = "Geneve from GWLB subnet ${ingress.key + 1}"
      protocol    = "udp"
      from_port   = 6081
      to_port     = 6081
      cidr_blocks = [ingress.value]
    }
  }

  dynamic "ingress" {
    for_each = local.gwlb_cidrs
    content {
      description = "GWLB health checks from GWLB subnet ${ingress.key + 1} (gwlbtun -p)"
      protocol    = "tcp"
      from_port   = var.health_port
      to_port     = var.health_port
      cidr_blocks = [ingress.value]
    }
  }

  dynamic "egress" {
    for_each = local.gwlb_cidrs
    content {
      description = "Geneve back to GWLB subnet ${egress.key + 1} (from port 6081)"
      protocol    = "udp"
      from_port   = 6081
      to_port     = 6081
      cidr_blocks = [egress.value]
    }
  }

  egress {
    description = "HTTPS: Amazon Linux packages, the release at release_url, SSM Session Manager"
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = merge(var.tags, { Name = "${var.name}-appliance" })

  lifecycle {
    create_before_destroy = true
  }
}

# InstanceRole + InstanceProfile: SSM Session Manager access, nothing else (no SSH key).
data "aws_partition" "current" {}

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name_prefix        = "${var.name}-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "instance" {
  name_prefix = "${var.name}-"
  role        = aws_iam_role.instance.name
  tags        = var.tags
}

# LaunchTemplate
resource "aws_launch_template" "appliance" {
  name_prefix            = "${var.name}-"
  image_id               = nonsensitive(data.aws_ssm_parameter.al2023.value)
  instance_type          = var.instance_type
  vpc_security_group_ids = [aws_security_group.appliance.id]
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  # IMDSv2 only (checkov CKV_AWS_79); one hop: containers on the appliance get no credentials.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  # The root volume of Amazon Linux 2023, encrypted (checkov CKV_AWS_8).
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      encrypted             = true
      volume_type           = "gp3"
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-gwlbtun" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-gwlbtun" })
  }

  user_data = base64encode(templatefile("${path.module}/user-data.sh.tftpl", local.user_data_vars))

  tags = var.tags

  lifecycle {
    # An RPM for the other CPU fails at plan time, not on every instance at boot.
    precondition {
      condition     = can(regex("\\.${local.rpm_arch[var.architecture]}\\.rpm(\\?|$)", var.release_url))
      error_message = "release_url must be the .${local.rpm_arch[var.architecture]}.rpm for architecture ${var.architecture}."
    }
  }
}

# AutoScalingGroup, with the termination lifecycle hook (the drain: docs/deploy-aws.md).
resource "aws_autoscaling_group" "appliance" {
  name_prefix               = "${var.name}-"
  vpc_zone_identifier       = var.appliance_subnet_ids
  min_size                  = var.min_size
  max_size                  = var.max_size
  desired_capacity          = var.desired_capacity
  target_group_arns         = [aws_lb_target_group.gwlbtun.arn]
  health_check_type         = "ELB"
  health_check_grace_period = 300

  launch_template {
    id      = aws_launch_template.appliance.id
    version = aws_launch_template.appliance.latest_version
  }

  initial_lifecycle_hook {
    name                 = "gwlbtun-drain"
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    heartbeat_timeout    = var.termination_wait_seconds
    default_result       = "CONTINUE"
  }

  # The launch template tags the instances; the group's own tag is not copied to them.
  tag {
    key                 = "Name"
    value               = "${var.name}-gwlbtun"
    propagate_at_launch = false
  }

  # var.tags, but its Name (if any) gives way to the one above: a group takes each key once.
  dynamic "tag" {
    for_each = { for k, v in var.tags : k => v if k != "Name" }
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false
    }
  }

  lifecycle {
    # Target tracking moves it; a later apply must not put it back.
    ignore_changes = [desired_capacity]

    precondition {
      condition     = var.min_size <= var.desired_capacity && var.desired_capacity <= var.max_size
      error_message = "min_size <= desired_capacity <= max_size."
    }
    precondition {
      condition     = var.termination_wait_seconds > var.deregistration_delay_seconds
      error_message = "termination_wait_seconds must be above deregistration_delay_seconds, or appliances terminate while GWLB still sends them flows."
    }
  }
}

# CpuScalingPolicy
resource "aws_autoscaling_policy" "cpu" {
  name                      = "${var.name}-cpu"
  autoscaling_group_name    = aws_autoscaling_group.appliance.name
  policy_type               = "TargetTrackingScaling"
  estimated_instance_warmup = 300

  target_tracking_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
    target_value = var.cpu_target_percent
  }
}

# EndpointService + EndpointServicePermissions
resource "aws_vpc_endpoint_service" "gwlb" {
  acceptance_required        = var.acceptance_required
  gateway_load_balancer_arns = [aws_lb.gwlb.arn]
  allowed_principals         = var.allowed_principals
  tags                       = merge(var.tags, { Name = "${var.name}-service" })
}
